"""The one place dse uses torch's private API, and why.

Compile seconds (dse.train.compiled) come from dynamo's compile callbacks
(`torch._dynamo.callback.callback_handler`): they run at the start and end of each outermost
compilation, a backward compiled lazily at its first call included. torch 2.13 has no public
hook for them (`torch.compiler` offers none), and timing the first step of each shape instead
would count that step's own work as compiling. `torch.compiler.reset()` clears the
callbacks, so registering checks first. If torch renames them, only this file changes.
"""

from __future__ import annotations

from collections.abc import Callable

CompileCallback = Callable[[object], None]


def on_compilations(start: CompileCallback, end: CompileCallback) -> None:
    """Have dynamo call `start` and `end` around each compilation (again after a reset)."""
    from torch._dynamo.callback import callback_handler

    if start not in callback_handler.start_callbacks:
        callback_handler.register_start_callback(start)
        callback_handler.register_end_callback(end)
