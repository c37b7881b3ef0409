"""A stand-in for the Pulumi CLI, enough for the Automation API calls shipshape makes to
read a stack's outputs: `version`, `stack select`, `stack output --json [--show-secrets]`.

State comes from the JSON file in $FAKE_PULUMI_STATE:
  {"stacks": {"dev": {"outputs": {"name": value}, "secret": ["name"]}}}
Every call is appended to $FAKE_PULUMI_STATE.log, one JSON list of arguments a line.
Any other command succeeds silently.
"""

import json
import os
import sys

args = [a for a in sys.argv[1:] if a != "--non-interactive"]
state_path = os.environ["FAKE_PULUMI_STATE"]
with open(state_path + ".log", "a") as log:
    log.write(json.dumps(args) + "\n")
with open(state_path) as handle:
    stacks = json.load(handle)["stacks"]


def stack_name():
    return args[args.index("--stack") + 1] if "--stack" in args else None


if args[:1] == ["version"]:
    print("v3.999.0")
elif args[:2] == ["stack", "select"]:
    if stack_name() not in stacks:
        print(f"error: no stack named '{stack_name()}' found", file=sys.stderr)
        sys.exit(255)
elif args[:2] == ["stack", "output"]:
    found = stacks[stack_name()]
    shown = {k: (v if "--show-secrets" in args or k not in found.get("secret", []) else "[secret]")
             for k, v in found["outputs"].items()}
    print(json.dumps(shown))
