#!/bin/sh
# Installs the Debian packages h5ml needs to build, test and run its demo, or the packages
# named as arguments (`make fuzz`: clang libclang-rt-14-dev).
# As root it runs apt-get; otherwise it prints the command to run.
set -eu

PKGS="build-essential cmake pkg-config libhdf5-dev hdf5-tools liblzf-dev libjansson-dev zlib1g-dev libdeflate-dev libmatio-dev
python3-dev python3-h5py python3-numpy python3-ase python3-pytest python3-scipy python3-tqdm python3-torch"
[ $# -gt 0 ] && PKGS="$*"

missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: missing Debian packages:$missing" >&2
if [ "$(id -u)" -eq 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
  echo "install-deps: installed$missing" >&2
else
  echo "install-deps: run: sudo apt-get install -y$missing" >&2
  exit 1
fi
