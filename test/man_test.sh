#!/usr/bin/env bash
# synccache(3) covers the public API: every function and every type the
# header exports is named in the page, and the page renders without a
# warning (groff -ww) when groff is installed. Also checks the installed
# per-function pages (`man sc_get`) when given an install prefix.
#
# usage: man_test.sh SOURCE_DIR [INSTALL_PREFIX]
set -u
SRC=$1
PREFIX=${2:-}
PAGE=$SRC/docs/man/synccache.3
HDR=$SRC/include/synccache/synccache.h
fails=0
fail() {
    echo "FAIL: $*" >&2
    fails=$((fails + 1))
}

# Functions: "SC_EXPORT <type> [*]sc_name(".
funcs=$(grep -E '^SC_EXPORT ' "$HDR" | grep -oE '[ *]sc_[a-z0-9_]+\(' | tr -d ' *(' | sort -u)
[ -n "$funcs" ] || fail "no functions found in $HDR"
for f in $funcs; do
    # In the synopsis (.BI "... sc_name(") and described (\fBsc_name\fR or .BR sc_name ...).
    grep -qE "^\.BI \"[^\"]*[ *]$f\(" "$PAGE" || fail "$f is not in the SYNOPSIS"
    grep -qE "(^\.BR .*\b$f\b|\\\\fB$f\\\\fR)" "$PAGE" || fail "$f is not described"
done
# Types: typedef'd names and the enum type names.
types=$(grep -oE '^typedef (struct|enum) sc_[a-z_]+|\} sc_[a-z_]+;|\(\*sc_[a-z_]+_fn\)' "$HDR" |
    grep -oE 'sc_[a-z_]+' | sort -u)
[ -n "$types" ] || fail "no types found in $HDR"
for t in $types; do
    grep -qE "(\\\\fB$t\\\\fR|^\.B $t\b|^\.B [^\"]*\b$t\b)" "$PAGE" || fail "type $t is not in the page"
done

if command -v groff >/dev/null 2>&1; then
    warn=$(groff -man -Tutf8 -ww -z "$PAGE" 2>&1)
    [ -z "$warn" ] || fail "groff warns: $warn"
else
    echo "man_test: groff not installed, rendering not checked"
fi

if [ -n "$PREFIX" ]; then
    mandir=$(ls -d "$PREFIX"/share/man/man3 2>/dev/null || ls -d "$PREFIX"/man/man3 2>/dev/null)
    [ -f "$mandir/synccache.3" ] || fail "synccache.3 not installed under $PREFIX"
    for f in $funcs; do
        [ "$(cat "$mandir/$f.3" 2>/dev/null)" = ".so man3/synccache.3" ] || fail "$f.3 not installed"
    done
    if command -v man >/dev/null 2>&1 && command -v groff >/dev/null 2>&1; then
        MANPATH=$(dirname "$mandir") man -P cat 3 sc_get 2>/dev/null | grep -q 'sc_fetch' ||
            fail "man sc_get does not show the synccache page"
    fi
fi

[ "$fails" = 0 ] || exit 1
echo "man_test: $(wc -w <<<"$funcs") functions and $(wc -w <<<"$types") types covered"
