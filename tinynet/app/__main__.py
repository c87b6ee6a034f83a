"""python -m tinynet.app [--port N] [--model PATH] [--host ADDRESS]: serve the draw-a-digit page."""

import argparse
import ipaddress
import sys

from ..errors import TinynetError


def _port(text):
    if not (text.isascii() and text.isdigit()) or not 0 <= int(text) <= 65535:  # "²".isdigit() is True
        raise argparse.ArgumentTypeError(f"a port is a whole number from 0 to 65535 (0: any free one); got {text!r}")
    return int(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinynet.app",
                                     description="Draw a digit and watch the network's forward and backward pass.")
    parser.add_argument("--port", type=_port, default=8000, help="the port to serve on (default: %(default)s)")
    parser.add_argument("--model", default=None, metavar="PATH",
                        help="a model file saved by model.save (default: the CNN shipped with tinynet)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="the address to bind (default: %(default)s, this machine only)")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser.parse_args(argv)


def _is_loopback(host):
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def main(argv=None):
    args = parse_args(argv)
    from .. import load_model
    from ..models import pretrained
    from .server import make_server

    try:
        model = pretrained("cnn") if args.model is None else load_model(args.model)
        server = make_server(model, args.host, args.port, verbose=args.verbose)  # checks the model first
    except (TinynetError, ValueError, TypeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"error: cannot serve on {args.host}:{args.port}: {error.strerror or error}. "
              "Choose another address with --host ADDRESS (127.0.0.1: this machine only) or another port with "
              "--port N (0 picks a free one).", file=sys.stderr)
        return 2
    host, port = server.server_address[:2]
    if not _is_loopback(args.host):
        print(f"Note: serving on {args.host}, not 127.0.0.1: other machines that can reach this one can use the page.")
    source = args.model or "the CNN shipped with tinynet"
    print(f"tinynet page with {source}: http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}/ "
          f"(Ctrl+C to stop)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("Stopped.")
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
