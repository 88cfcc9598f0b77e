# SPDX-License-Identifier: MIT
# Shared settings for the setup scripts: where the build tree lives and how
# apt is pointed at bookworm-backports and trixie sources without touching
# /etc/apt (a private sources file and a private state directory).

set -euo pipefail

TOP=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD:-$TOP/build}
mkdir -p "$BUILD"
BUILD=$(cd "$BUILD" && pwd)
APT_DIR=$BUILD/apt

log() { printf '[setup] %s\n' "$*" >&2; }

# Root for apt-get/dpkg; empty prefix when we already are root.
SUDO=
if [ "$(id -u)" != 0 ]; then
	SUDO=sudo
fi

apt_private_init() {
	mkdir -p "$APT_DIR/lists/partial" "$APT_DIR/archives/partial"
	local keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	cat >"$APT_DIR/sources.list.new" <<SRC
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb [signed-by=$keyring] http://deb.debian.org/debian bookworm-backports main
deb-src [signed-by=$keyring] http://deb.debian.org/debian trixie main
SRC
	if ! cmp -s "$APT_DIR/sources.list.new" "$APT_DIR/sources.list" 2>/dev/null; then
		mv "$APT_DIR/sources.list.new" "$APT_DIR/sources.list"
		rm -f "$APT_DIR/updated"
	else
		rm -f "$APT_DIR/sources.list.new"
	fi
	APT_OPTS=(-o "Dir::Etc::sourcelist=$APT_DIR/sources.list"
		-o "Dir::Etc::sourceparts=/dev/null"
		-o "Dir::State::Lists=$APT_DIR/lists"
		-o "Dir::Cache::Archives=$APT_DIR/archives"
		-o "APT::Get::List-Cleanup=0"
		-o "Debug::NoLocking=1")
	# The package lists are refreshed once a day at most, so a warm build
	# never waits on the network.
	if [ ! -f "$APT_DIR/updated" ] ||
	   [ -n "$(find "$APT_DIR/updated" -mmin +1440 2>/dev/null)" ]; then
		log "apt-get update (private lists: bookworm, bookworm-backports, trixie sources)"
		apt-get "${APT_OPTS[@]}" -qq update >&2
		touch "$APT_DIR/updated"
	fi
}

# Print the version of a package as the private lists know it.
apt_private_version() {
	apt-cache "${APT_OPTS[@]}" show "$1" 2>/dev/null |
		awk '/^Version:/ { print $2; exit }'
}
