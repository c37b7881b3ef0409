"""shipshape's policy pack (pulumi_policy): see policies.py."""
