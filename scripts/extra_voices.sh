#!/usr/bin/env bash
# Opt-in: the 26 extra English voices of `toposcope synth --voices default,extra` (docs/method.md
# § Data and phones): six Festival voices from Debian's contrib component and the MBROLA diphone
# databases from non-free that they and espeak-ng's English MBROLA voices read (licence: the MBROLA
# databases' own, see /usr/share/doc/mbrola-us1/copyright once installed). A stock Debian enables neither component, so
# this script adds both in a file of its own (/etc/apt/sources.list.d/toposcope-contrib-non-free.sources)
# and installs the packages. Safe to re-run. `make setup`, `make demo` and `make test` never run it.
set -euo pipefail

# one line per engine; tests/test_synth.py checks this list against toposcope.synth.voices.EXTRA_VOICES
PKGS=(festvox-don festvox-en1 festvox-rablpc16k festvox-us1 festvox-us2 festvox-us3
      mbrola-af1 mbrola-de1 mbrola-de2 mbrola-de3 mbrola-de4 mbrola-de5 mbrola-de6 mbrola-en1 mbrola-fr1 mbrola-fr4 mbrola-gr2 mbrola-hu1 mbrola-nl2 mbrola-pl1 mbrola-ro1 mbrola-sw1 mbrola-sw2 mbrola-us1 mbrola-us2 mbrola-us3)
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "extra-voices: needs root on Debian (apt-get): enable the contrib and non-free components," >&2
  echo "extra-voices: then apt-get install ${PKGS[*]}" >&2
  exit 1
fi
. /etc/os-release
codename=${VERSION_CODENAME:?no VERSION_CODENAME in /etc/os-release}
src=/etc/apt/sources.list.d/toposcope-contrib-non-free.sources
if ! apt-cache policy 2>/dev/null | grep -q "c=non-free,"; then
  echo "extra-voices: enabling Debian contrib and non-free ($src)"
  cat > "$src" <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $codename
Components: contrib non-free
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${PKGS[@]}" >/dev/null
echo "extra-voices: installed ${PKGS[*]} (and the mbrola program)"
echo "extra-voices: check with  .venv/bin/toposcope synth --list-voices"
