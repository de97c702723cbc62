#!/usr/bin/env bash
# pip's configured package sources and constraints (pip.conf files and PIP_* variables), printed as uv arguments,
# so `uv pip install` installs from where `pip install` would, within the same caps. Usage: uv-sources.sh PYTHON
set -euo pipefail
"$1" -m pip config list 2>/dev/null | while IFS='=' read -r key value; do
  value=${value#\'}; value=${value%\'}
  case "${key##*.}" in
    index-url) echo "--index-url $value" ;;
    extra-index-url) for url in $value; do echo "--extra-index-url $url"; done ;;
    find-links) for place in $value; do echo "--find-links $place"; done ;;
    constraint) for file in $value; do echo "--constraint $file"; done ;;
  esac
done | sort -u
# pip picks the best version from every index it is given; uv by default stops at the first index that has a name.
echo "--index-strategy unsafe-best-match"
