"""The Pulumi migration gate: the dynamic provider and the library code it runs. A
caller of the commands, like the tasks."""
