"""``python -m losskit.cli``: the ``losskit`` command, for environments without the script."""

from losskit.cli import main

if __name__ == "__main__":  # importing this module (a doctest pass, a tool) runs nothing
    main()
