#!/bin/sh
# Prints a help2man include file for qabox(1): a COMMANDS section with every
# command's own --help (and its subcommands'), read from the CLI itself.
# Usage: qabox-commands.sh PATH/TO/qabox
set -eu
qabox=$1

# The names CLI11 lists under SUBCOMMANDS in `qabox [CMD] --help`.
subcommands() {
  "$qabox" "$@" --help 2>/dev/null |
    awk 'tolower($0) ~ /^subcommands:/ {on = 1; next} on && /^[^ ]/ {on = 0} on && NF {sub(/,$/, "", $1); print $1}'
}

# One command's help as no-fill roff: backslashes and leading dots or quotes
# would otherwise be read as requests.
section() {
  printf '.SS "qabox %s"\n.nf\n' "$*"
  "$qabox" "$@" --help 2>&1 | sed -e 's/\\/\\e/g' -e "s/^\([.']\)/\\\\\&\1/"
  printf '.fi\n'
}

echo "[COMMANDS]"
echo "Every command, with the help it prints for --help."
for cmd in $(subcommands); do
  section "$cmd"
  for sub in $(subcommands "$cmd"); do
    section "$cmd" "$sub"
  done
done
