"""The command lines of coordatt_mm (``coordatt-infer`` and ``tools/*.py``).

Each command parses and checks its arguments with the standard library alone and imports
coordatt_mm -- torch and the OpenMMLab codebases, seconds of start-up -- only once they are
valid, so that ``--help`` and argument errors answer at once. The work itself is done by
``coordatt_mm.apis``, ``coordatt_mm.deploy`` and ``coordatt_mm.analysis``; the GPU check, a
tool that uses them all, is here (``coordatt_cli.gpu_check``).
"""
