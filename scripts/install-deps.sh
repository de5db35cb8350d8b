#!/usr/bin/env bash
# Installs, with apt-get, every Debian 12 package brine needs to build and test.
# Idempotent: when everything is present it only runs dpkg-query and exits in well under a second.
set -euo pipefail

packages=(
  build-essential cmake pkg-config
  libhdf5-dev hdf5-tools zlib1g-dev libdeflate-dev libisal-dev
  libcmocka-dev
  python3-numpy python3-h5py python3-pytest python3-matplotlib
  python3-pandas python3-xarray python3-tqdm jupyter-nbconvert python3-ipykernel python3-nbclient
  gfortran
  libopenmpi-dev openmpi-bin
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
