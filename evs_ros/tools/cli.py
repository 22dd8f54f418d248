"""The ``evs`` command line: one entry point, one module per subcommand.

Each subcommand lives in ``evs_ros/tools/<module>.py`` and exposes ``add_arguments(parser)`` and
``run(args) -> int`` (or ``main(argv) -> int`` when it has sub-commands of its own). Modules are
imported only when their command runs, so ``evs --help`` stays fast and a missing optional
dependency of one command never breaks the others.
"""

import argparse
import importlib
import os
import sys

# command name -> (module under evs_ros.tools, one-line help)
COMMANDS = {
    'demo': ('demo', 'run the ROS node on built-in clips over real DDS and write a report'),
    'run': ('run_video', 'segment a video file offline with an operating point and backend'),
    'bench': ('bench', 'benchmark operating points vs per-frame (JSON, markdown, plots)'),
    'eval': ('evaluate', 'mIoU per operating point on a Cityscapes-layout dataset'),
    'synth': ('synth', 'render a synthetic driving dataset in the Cityscapes layout'),
    'train': ('train', 'train ICNet or the Refiner'),
    'convert': ('convert', 'convert official ICNet Caffe weights to a PyTorch checkpoint'),
    'export': ('export', 'export a network to TorchScript or ONNX'),
    'weights': ('weights', 'list, download (explicitly) and locate public pretrained checkpoints'),
    'bag': ('bag', 'process a recorded ROS 2 bag offline into a new bag'),
    'fleet': ('fleet', 'label every bag of a recording archive on a Ray cluster'),
    'node': ('node', 'run the ROS 2 node (same as `ros2 run evs_ros evs_node`)'),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='evs', description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest='command', metavar='COMMAND')
    sub.required = True
    for name, (module, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def main(argv=None) -> int:
    """Dispatch to the command module.

    A closed output pipe (``evs weights list | head``) ends quietly, as the Python documentation
    recommends.
    """
    try:
        return _dispatch(list(sys.argv[1:] if argv is None else argv))
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def _dispatch(argv) -> int:
    parser = build_parser()
    if not argv or argv[0] in ('-h', '--help') or argv[0] not in COMMANDS:
        parser.parse_args(argv or ['--help'])
        return 2
    name = argv[0]
    module_name, help_text = COMMANDS[name]
    module = importlib.import_module(f'evs_ros.tools.{module_name}')
    if hasattr(module, 'main'):  # a command with sub-commands of its own (e.g. `evs bench flow`)
        return int(module.main(argv[1:]) or 0)
    sub_parser = argparse.ArgumentParser(prog=f'evs {name}', description=help_text)
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == '__main__':
    sys.exit(main())
