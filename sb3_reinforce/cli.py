"""
``sb3-reinforce`` (also ``python -m sb3_reinforce``): the RL Zoo's commands with REINFORCE registered.

    sb3-reinforce train --algo reinforce --env CartPole-v1     # uses the package's zoo_configs/reinforce.yml
    sb3-reinforce train --algo ppo --env CartPole-v1           # every zoo algorithm, with the zoo's own configs
    sb3-reinforce enjoy --algo reinforce --env CartPole-v1 -f logs/
    sb3-reinforce plot_train | all_plots | plot_from_file ...
    sb3-reinforce variance --env CartPole-v1 [--model PATH] --episodes 1000   # gradient variance study
    sb3-reinforce benchmark --envs CartPole-v1 Acrobot-v1 --algos reinforce a2c ppo --seeds 10 --out DIR

Every flag of the zoo's commands works as in the zoo (``-n``, ``--seed``, ``-f``, ``--eval-freq``, ``-params``,
``-conf``, ``--vec-env``, ``-P``, ``--track``, ``-optimize``, ``--n-trials``, ``--n-jobs``, ``--storage``,
``--study-name``, ...).
"""

import importlib
import sys
from collections.abc import Callable

# command -> (module, function): imported on use, so that `train` does not need the plotting dependencies loaded.
ZOO_COMMANDS = {
    "train": ("rl_zoo3.train", "train"),
    "enjoy": ("rl_zoo3.enjoy", "enjoy"),
    "plot_train": ("rl_zoo3.plots.plot_train", "plot_train"),
    "plot_from_file": ("rl_zoo3.plots.plot_from_file", "plot_from_file"),
    "all_plots": ("rl_zoo3.plots.all_plots", "all_plots"),
}
# The package's own commands.
OWN_COMMANDS = {
    "variance": ("sb3_reinforce.variance", "main"),
    "benchmark": ("sb3_reinforce.benchmark.cli", "main"),
}
COMMANDS = {**ZOO_COMMANDS, **OWN_COMMANDS}
# The extra that installs what each command needs
EXTRAS = {**dict.fromkeys(ZOO_COMMANDS, "zoo"), "variance": "benchmark", "benchmark": "benchmark"}


def _command(name: str) -> Callable[[], None]:
    module, function = COMMANDS[name]
    return getattr(importlib.import_module(module), function)


def _missing_extra(command: str, error: ImportError) -> SystemExit:
    return SystemExit(
        f"sb3-reinforce {command} needs the '{EXTRAS[command]}' extra ({error}): "
        f"pip install 'sb3-reinforce[{EXTRAS[command]}]'"
    )


def main(argv: list[str] | None = None) -> None:
    """Dispatch ``sb3-reinforce COMMAND [zoo flags...]``."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        print("commands:", ", ".join(COMMANDS))
        return
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        raise SystemExit(f"sb3-reinforce: unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
    try:
        run = _command(command)
        if command in ZOO_COMMANDS:
            from sb3_reinforce import zoo
    except ImportError as error:
        raise _missing_extra(command, error) from None
    if command in ZOO_COMMANDS:
        zoo.register()
        if command == "train" and zoo.uses_default_config(rest):
            rest += ["--conf-file", zoo.default_config_path(zoo.option_value(rest, "--algo") or zoo.ALGO_NAME)]
        storage = zoo.option_value(rest, "--storage")
        if command == "train" and storage is not None:
            zoo.prepare_storage(storage)
    # The commands parse sys.argv themselves.
    sys.argv = [f"sb3-reinforce {command}", *rest]
    run()


if __name__ == "__main__":
    main()
