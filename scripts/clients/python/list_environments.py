#!/usr/bin/python3
"""Lists the environments on a qabox agent, as a client in another language would.

The client code is generated from proto/qabox/v1/qabox.proto into a temporary
directory each time it runs, so it can never drift from the proto it ships with:

  protoc -I proto --python_out=GEN --grpc_out=GEN \\
      --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin proto/qabox/v1/qabox.proto

Debian 12 packages it needs:
  apt-get install python3-grpcio python3-protobuf protobuf-compiler-grpc libprotobuf-dev
(protoc and grpc_python_plugin; libprotobuf-dev has the well-known types'
.proto files, e.g. google/protobuf/timestamp.proto, that qabox.proto imports).
It runs with Debian's /usr/bin/python3, where those packages are installed.

Usage: list_environments.py [ENDPOINT]
ENDPOINT is unix:///path or host:port (plaintext); default $QABOX_ENDPOINT,
then unix:///run/qabox/qabox.sock. $QABOX_TOKEN, when set, is sent as a
bearer token. Exit codes: 0 ok, 1 error, 6 agent not reachable (as qabox's).
"""

import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
PROTO_DIR = os.environ.get("QABOX_PROTO_DIR", os.path.join(HERE, "..", "..", "..", "proto"))
GRPC_PYTHON_PLUGIN = "/usr/bin/grpc_python_plugin"


def generate(out_dir):
    subprocess.run(
        [
            "protoc",
            "-I", PROTO_DIR,
            "--python_out=" + out_dir,
            "--grpc_out=" + out_dir,
            "--plugin=protoc-gen-grpc=" + GRPC_PYTHON_PLUGIN,
            os.path.join(PROTO_DIR, "qabox", "v1", "qabox.proto"),
        ],
        check=True,
    )


def main():
    endpoint = (sys.argv[1] if len(sys.argv) > 1 else None) or os.environ.get(
        "QABOX_ENDPOINT", "unix:///run/qabox/qabox.sock")
    with tempfile.TemporaryDirectory(prefix="qabox-py-") as gen:
        try:
            generate(gen)
        except (OSError, subprocess.CalledProcessError) as e:
            print(f"list_environments: generating the client from {PROTO_DIR}: {e}",
                  file=sys.stderr)
            return 1
        # The generated files import each other as qabox.v1.*: a namespace
        # package rooted at the temporary directory.
        sys.path.insert(0, gen)
        import grpc
        from qabox.v1 import qabox_pb2, qabox_pb2_grpc

        metadata = []
        if os.environ.get("QABOX_TOKEN"):
            metadata.append(("authorization", "Bearer " + os.environ["QABOX_TOKEN"]))
        with grpc.insecure_channel(endpoint) as channel:
            stub = qabox_pb2_grpc.QaboxStub(channel)
            try:
                resp = stub.ListEnvironments(qabox_pb2.ListEnvironmentsRequest(),
                                             timeout=10, metadata=metadata)
            except grpc.RpcError as e:
                print(f"list_environments: {endpoint}: {e.code().name}: {e.details()}",
                      file=sys.stderr)
                return 6 if e.code() == grpc.StatusCode.UNAVAILABLE else 1
        state_name = qabox_pb2.Environment.State.Name
        for env in resp.environments:
            print(f"{env.ticket}\t{state_name(env.state)}\t{env.url}\t{env.commit[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
