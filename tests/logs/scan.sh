#!/usr/bin/env bash
# Scans every log the gateway wrote during the integration tests (GatewayProcess copies each one
# into LOG_DIR when RELANCE_TEST_LOG_DIR is set) for personal data and secrets: email
# addresses, phone numbers, and the tokens and signing secrets the tests configure. Masked forms
# ("j***@example.com", "+3********78") are what the gateway writes instead.
#
#   tests/logs/scan.sh LOG_DIR SOURCE_DIR [--self-test]
set -euo pipefail

dir=$1
src=$2
self_test=${3:-}

# The secrets the integration tests hand to the gateway (tokens, signing secrets).
mapfile -t secrets < <(grep -rhoE '\bk[A-Za-z]*(Token|Secret)[A-Za-z]* = "[^"]{8,}"' "$src/tests/integration" |
  sed -E 's/.*= "([^"]+)"/\1/' | sort -u)
email='[A-Za-z0-9._%+-]{2,}@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+'
phone='\+[0-9]([ .-]?[0-9]){7,14}'

# scan FILE...: prints every offending line with its file and what it holds; status 1 if any.
scan() {
  local found=0 s
  if grep -HnoE "$email" "$@" | sed 's/^/email address: /'; then found=1; fi
  if grep -HnoE "$phone" "$@" | sed 's/^/phone number: /'; then found=1; fi
  for s in "${secrets[@]}"; do
    if grep -HnF -- "$s" "$@" | cut -c1-200 | sed 's/^/secret: /'; then found=1; fi
  done
  return "$found"
}

if [[ $self_test == --self-test ]]; then
  # The scan must be able to fail: a log holding each kind of leak is caught, a masked one is not.
  ((${#secrets[@]} >= 3)) || { echo "scan: only ${#secrets[@]} test secrets found in the sources"; exit 1; }
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  printf '%s\n' '{"message":"mail to j***@customers.test refused, phone +3********78"}' >"$tmp/masked.log"
  scan "$tmp/masked.log" >/dev/null || { echo "scan: a masked log was reported"; exit 1; }
  for leak in 'jeanne.martin@example.com' '+33612345678' '+33 6 12 34 56 78' "${secrets[0]}"; do
    printf '{"message":"%s"}\n' "$leak" >"$tmp/leak.log"
    if scan "$tmp/leak.log" >/dev/null; then echo "scan: missed a leak: $leak"; exit 1; fi
  done
  echo "scan self-test: 1 masked log passed, 4 leaks caught (${#secrets[@]} test secrets known)"
  exit 0
fi

shopt -s nullglob
files=("$dir"/*)
if ((${#files[@]} == 0)); then
  echo "scan: no gateway log in $dir; run the integration tests first (they copy them there: RELANCE_TEST_LOG_DIR)"
  exit 1
fi
lines=$(cat "${files[@]}" | wc -l)
json=$(cat "${files[@]}" | grep -c '^{"time":' || true)
if ! scan "${files[@]}"; then
  echo "scan: personal data or secrets found in the gateway's logs (above)"
  exit 1
fi
echo "scan: ${#files[@]} gateway logs, $lines lines ($json JSON), no email address, phone number or any of ${#secrets[@]} test secrets"
