#!/bin/sh
# The node image: its packages (QABOX_PACKAGES) over the services image.
set -eu
. "$IMAGE_DIR/../lib/apt-layer.sh"
apt_layer_install
apt_layer_clean
