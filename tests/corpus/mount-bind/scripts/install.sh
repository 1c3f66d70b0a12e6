#!/bin/sh
set -eu
mkdir -p /opt/app
echo "installed by scripts/install.sh" > /opt/app/INSTALLED
