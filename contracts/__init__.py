"""The shape of everything that crosses a process boundary."""
