"""The tasks that come with shiftlab, one package each, registered here once.

A new task is a package beside these (its env, verifier, expert, prompts and a `Task` subclass) and
one line below; nothing else in shiftlab changes. Tasks from elsewhere call `register_task` themselves.
"""

from shiftlab.task import register_task
from shiftlab.tasks.clock import Clock
from shiftlab.tasks.general_points import GeneralPoints
from shiftlab.tasks.virl import Virl

for _task in (GeneralPoints(), Virl(), Clock()):
    register_task(_task)
