#!/usr/bin/env bash
# Install Terraform from HashiCorp's apt repository on an Ubuntu/Debian CI runner (the deploy jobs).
#   deploy/tools/install-terraform.sh 1.11.4
# The repository key is checked against HashiCorp's published fingerprint before apt trusts it.
set -euo pipefail

TF_VERSION="${1:?usage: install-terraform.sh VERSION}"
FINGERPRINT="798AEC654E5C15428C8E42EEAA16FCBCA621E701"
KEYRING=/usr/share/keyrings/hashicorp-archive-keyring.gpg
SUDO=""
[[ "$(id -u)" == "0" ]] || SUDO="sudo"

if command -v terraform >/dev/null 2>&1 && terraform version | grep -q "^Terraform v${TF_VERSION}\$"; then
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
curl -fsSL --max-time 60 https://apt.releases.hashicorp.com/gpg | gpg --dearmor >"$tmp/hashicorp.gpg"
if ! gpg --no-default-keyring --keyring "$tmp/hashicorp.gpg" --with-colons --fingerprint |
    grep -q "^fpr:::::::::${FINGERPRINT}:"; then
    echo "install-terraform: HashiCorp's apt key does not have fingerprint $FINGERPRINT" >&2
    exit 1
fi
$SUDO install -m 0644 "$tmp/hashicorp.gpg" "$KEYRING"
codename="$(. /etc/os-release && echo "$VERSION_CODENAME")"
echo "deb [signed-by=$KEYRING] https://apt.releases.hashicorp.com $codename main" |
    $SUDO tee /etc/apt/sources.list.d/hashicorp.list >/dev/null
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "terraform=${TF_VERSION}-*"
terraform version
