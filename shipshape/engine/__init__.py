"""The engine: render, load, apply, record, compare. Knows SQL trees and databases,
not tasks, runbooks or Pulumi."""
