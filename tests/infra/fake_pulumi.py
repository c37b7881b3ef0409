"""A stand-in for the Pulumi CLI, enough for the Automation API calls shipshape makes:
`version`, `stack select`, `stack output`, `stack history` and `destroy`.

It is strict where the real CLI is: each command accepts only the flags the real one
accepts (as `pulumi <command> --help` lists them: its own, plus the global flags), and
anything else fails as cobra fails it, `error: unknown flag: --x`, exit 255. So a flag the
Automation API passes that the real CLI would refuse fails the test too, instead of
"succeeding silently" here and failing on a runner.

State comes from the JSON file in $FAKE_PULUMI_STATE:
  {"stacks": {"dev": {"outputs": {"name": value}, "secret": ["name"],
                      "resources": [{"urn": "...", "protect": true}]}}}
`destroy` behaves as the real one with protected resources: without
--exclude-protected it deletes nothing and fails naming the protected resource; with it,
it deletes the rest and keeps the protected ones (the state file is rewritten).
Every call is appended to $FAKE_PULUMI_STATE.log, one JSON list of arguments a line.
"""

import json
import os
import sys

# Flags that take a value (so the next argument is not a flag of its own).
VALUED = {"--stack", "-s", "--color", "--cwd", "-C", "--tracing", "--verbose", "-v",
          "--page", "--page-size", "--message", "-m", "--parallel", "-p", "--target", "-t",
          "--exclude", "-x", "--config-file", "--exec-kind", "--exec-agent", "--client",
          "--event-log", "--secrets-provider", "--otel-traces", "--memprofilerate",
          "--refresh", "-r", "--run-program"}
GLOBAL = {"--non-interactive", "--color", "--cwd", "-C", "--disable-integrity-checking",
          "--emoji", "-e", "--logflow", "--logtostderr", "--memprofilerate", "--otel-traces",
          "--profiling", "--tracing", "--verbose", "-v"}
FLAGS = {  # pulumi 3.x, `pulumi <command> --help`
    ("version",): set(),
    ("stack", "select"): {"--stack", "-s", "--create", "-c", "--secrets-provider"},
    ("stack", "output"): {"--stack", "-s", "--json", "-j", "--shell", "--show-secrets"},
    ("stack", "history"): {"--stack", "-s", "--json", "-j", "--full-dates", "--page",
                           "--page-size", "--show-secrets"},
    ("destroy",): {"--stack", "-s", "--yes", "-y", "--skip-preview", "-f", "--preview-only",
                   "--exclude-protected", "--continue-on-error", "--debug", "-d", "--diff",
                   "--message", "-m", "--parallel", "-p", "--refresh", "-r", "--remove",
                   "--suppress-outputs", "--suppress-progress", "--suppress-permalink",
                   "--target", "-t", "--target-dependents", "--exclude", "-x",
                   "--exclude-dependents", "--json", "-j", "--show-config",
                   "--show-replacement-steps", "--show-sames", "--config-file",
                   "--run-program", "--exec-kind", "--exec-agent", "--client", "--event-log",
                   "--neo", "--copilot"},
}

args = sys.argv[1:]
state_path = os.environ["FAKE_PULUMI_STATE"]
with open(state_path + ".log", "a") as log:
    log.write(json.dumps([a for a in args if a != "--non-interactive"]) + "\n")
with open(state_path) as handle:
    document = json.load(handle)
stacks = document["stacks"]


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(255)


def parse(argv):
    """(command words, {flag: value or True}), refusing a flag the real command refuses."""
    words, flags, index = [], {}, 0
    while index < len(argv):
        arg = argv[index]
        if arg.startswith("-"):
            name, _, inline = arg.partition("=")
            command = next((key for key in sorted(FLAGS, key=len, reverse=True)
                            if tuple(words[:len(key)]) == key), None)
            if name not in GLOBAL and (command is None or name not in FLAGS[command]):
                fail(f"unknown flag: {name}")
            if name in VALUED and not inline:
                index += 1
                inline = argv[index] if index < len(argv) else ""
            flags[name] = inline or True
        else:
            words.append(arg)
        index += 1
    return words, flags


words, flags = parse(args)
stack = flags.get("--stack") or flags.get("-s")

def engine_events(*events) -> None:
    """Write engine events where --event-log says (the file the Automation API tails for a
    destroy preview's summary), ending with the cancel event that stops its reader."""
    path = flags.get("--event-log")
    if isinstance(path, str):
        with open(path, "a") as handle:
            for sequence, event in enumerate([*events, {"cancelEvent": {}}]):
                handle.write(json.dumps({"sequence": sequence, "timestamp": 0, **event}) + "\n")


if words[:1] == ["version"]:
    # Newer CLIs stream engine events over gRPC; up to 3.205 the Automation API reads them
    # from the --event-log file, which is what this fake writes.
    print("v3.205.0")
elif words[:2] == ["stack", "select"]:
    if stack not in stacks:
        fail(f"no stack named '{stack}' found")
elif words[:2] == ["stack", "output"]:
    found = stacks[stack]
    shown = {k: (v if "--show-secrets" in flags or k not in found.get("secret", []) else "[secret]")
             for k, v in found["outputs"].items()}
    print(json.dumps(shown))
elif words[:2] == ["stack", "history"]:
    history = stacks[stack].get("history", [])
    print(json.dumps(history[:1] if "--page-size" in flags else history))
elif words[:1] == ["destroy"]:
    found = stacks[stack]
    resources = found.get("resources", [])
    protected = [r for r in resources if r.get("protect")]
    if "--preview-only" not in flags and not ("--yes" in flags or "-y" in flags):
        fail("--yes or --skip-preview must be passed in to proceed when running in non-interactive mode")
    if protected and "--exclude-protected" not in flags:
        urn = protected[0]["urn"]
        fail(f"resource {urn} cannot be deleted because it is protected. To unprotect the "
             f"resource, either remove the `protect` flag from the resource in your Pulumi "
             f"program and run `pulumi up`, or use the command: `pulumi state unprotect '{urn}'`")
    doomed = [r for r in resources if not r.get("protect")]
    for resource in doomed:
        print(f" - {resource['urn'].split('::')[-1]} {'would be deleted' if '--preview-only' in flags else 'deleted'}")
    engine_events({"summaryEvent": {"maybeCorrupt": False, "durationSeconds": 0,
                                    "resourceChanges": {"delete": len(doomed)}, "PolicyPacks": {}}})
    if "--preview-only" not in flags:
        found["resources"] = protected
        found.setdefault("history", []).insert(0, {
            "kind": "destroy", "startTime": "2026-01-01T00:00:00.000Z", "message": "",
            "environment": {}, "config": {}, "result": "succeeded",
            "endTime": "2026-01-01T00:00:01.000Z", "version": len(found.get("history", [])) + 1,
            "resourceChanges": {"delete": len(doomed)}})
        with open(state_path, "w") as handle:
            json.dump(document, handle)
    if protected:
        print(f"All unprotected resources were destroyed. There are still {len(protected)} "
              f"protected resources associated with this stack.")
else:
    fail(f"the fake CLI does not know `pulumi {' '.join(words)}`: teach it what the real one does")
