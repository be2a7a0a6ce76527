#!/bin/sh
# peer_adapter.sh: wire an AMS implementation with a command line to `ams conformance`.
#
#   ams conformance --peer-policies \
#     --peer-protect   "sh '$PWD/docs/examples/peer_adapter.sh' protect   {digest} {cipher} {keystore_conf} {queue} {format} {in} {out} {recipient_dn}" \
#     --peer-unprotect "sh '$PWD/docs/examples/peer_adapter.sh' unprotect {digest} {cipher} {keystore_conf} {queue} {format} {in} {out} {recipient_dn}"
#
# from the repository root: the kit runs each call in the case's own folder, after making a template
# word that names a file here (docs/examples/peer_adapter.sh) absolute; from elsewhere, give its path.
# The kit passes each value as exactly one argument (no shell ever reads the template's values), and
# {recipient_dn} repeats once per recipient, so the DNs come last. The implementation driven here is
# `ams` itself ($AMS, default `ams`); replace run_protect and run_unprotect with the commands of yours.
# Exit 0 when done, with the output file written; 1 to 125 mean "refused" (126 and up, or a signal,
# count as a crash, which fails the case: docs/conformance.md, "Exit status").
set -eu

operation=$1 digest=$2 cipher=$3 keystore_conf=$4 queue=$5 format=$6 input=$7 output=$8
shift 8 # what is left: the recipients' DNs

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Most implementations read policies rather than options: write this case's as a setmqspl line.
# A DN may hold spaces, commas, quotes and backslashes: single-quote it, escaping single quotes.
quote() { printf "'%s'" "$(printf '%s' "$1" | sed "s/'/'\\\\''/g")"; }
policy="setmqspl -m QM -p $(quote "$queue") -s $digest -e $cipher"
for dn in "$@"; do policy="$policy -r $(quote "$dn")"; done
mkdir "$work/policies"
printf '%s\n' "$policy" >"$work/policies/policy.spl"

AMS=${AMS:-ams}
run_protect() {
  $AMS protect -p "$queue" --policies "$work/policies" --keystore-conf "$keystore_conf" \
    --format "$format" --allow-deprecated -i "$input" -o "$output"
}
run_unprotect() {
  $AMS unprotect -p "$queue" --policies "$work/policies" --keystore-conf "$keystore_conf" \
    --format "$format" -i "$input" -o "$output"
}

case $operation in
protect) run_protect ;;
unprotect) run_unprotect ;;
*)
  echo "peer_adapter.sh: expected protect or unprotect, found $operation" >&2
  exit 2
  ;;
esac
