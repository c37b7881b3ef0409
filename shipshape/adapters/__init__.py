"""What the engine and the targets use below them: the embedded and scratch server
processes, the Pulumi stack outputs, the app's readiness over HTTP."""
