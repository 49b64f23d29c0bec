"""The ``grasp-cell`` command.

    grasp-cell launch [name:=value ...]   run the cell (same arguments as bin_pick.launch.py)
    grasp-cell args                       list the launch arguments and their defaults
    grasp-cell models                     list the registered grasp models
"""

from __future__ import annotations

import argparse
import sys

from grasp_cell.graph import LAUNCH_ARGUMENTS, parse_key_values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="grasp-cell", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    launch_parser = commands.add_parser("launch", help="run the cell's nodes (pip route of ros2 launch)")
    launch_parser.add_argument("arguments", nargs="*", metavar="name:=value")
    commands.add_parser("args", help="list launch arguments")
    commands.add_parser("models", help="list registered grasp models")
    options = parser.parse_args(argv)

    if options.command == "launch":
        from grasp_cell.launcher import launch

        try:
            overrides = parse_key_values(options.arguments)
            return launch(overrides)
        except ValueError as error:
            parser.error(str(error))
    if options.command == "args":
        for name, spec in LAUNCH_ARGUMENTS.items():
            choices = f" [{' | '.join(spec.choices)}]" if spec.choices else ""
            print(f"{name:<13} {spec.default!r:<11} {spec.description}{choices}")
        return 0
    if options.command == "models":
        from grasp_cell.models import available_models

        print("\n".join(available_models()))
        return 0
    return 1


if __name__ == "__main__":
    sys.exit(main())
