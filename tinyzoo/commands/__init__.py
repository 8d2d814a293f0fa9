"""The built-in ``tinyzoo`` commands, one module per area."""
