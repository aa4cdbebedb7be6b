#!/usr/bin/env bash
# Installs the Debian packages faultline's build and image recipes need, through the machine's
# own apt configuration, when they are missing (nothing to do on a machine that has them):
#   debootstrap                     the Debian base image every local image starts from
#   gcc, python3 + pip              the build, and the wheels some recipes unpack
#   cmake, libcurl4-openssl-dev     rdkafka's bundled librdkafka (built with cmake; includes curl.h)
#   chromium                        renders report.html headless in the tests (and screenshots)
# Used by the README's first command and by .ci/run. Needs root or sudo when something is missing.
set -euo pipefail
missing=()
command -v debootstrap >/dev/null 2>&1 || missing+=(debootstrap)
command -v gcc >/dev/null 2>&1 || missing+=(gcc)
command -v python3 >/dev/null 2>&1 || missing+=(python3 python3-pip)
command -v cmake >/dev/null 2>&1 || missing+=(cmake)
dpkg -s libcurl4-openssl-dev >/dev/null 2>&1 || missing+=(libcurl4-openssl-dev)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
if ((${#missing[@]})); then
    sudo_cmd=()
    [[ "$(id -u)" == 0 ]] || sudo_cmd=(sudo)
    echo "installing: ${missing[*]}"
    "${sudo_cmd[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}"
else
    echo "Debian packages: nothing to install"
fi
