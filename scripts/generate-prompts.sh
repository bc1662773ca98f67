#!/usr/bin/env bash
# Generate the voice prompts from the text catalogues with espeak-ng and sox.
#
#   scripts/generate-prompts.sh [LANG...] [--only ID...] [--force]
#
# Reads prompts/<lang>/catalogue.toml (lang: it, en; both by default) and
# writes prompts/<lang>/<id>.wav for every entry of [prompts] and
# [fragments]: 8 kHz, mono, 16-bit PCM, trimmed of leading and trailing
# silence, high-passed at 100 Hz, loudness normalised to an RMS level of
# -18 dBFS with peaks limited, 5 ms fades and 30 ms of silence at the end
# (so concatenated fragments are 30 ms apart and never click).
#
# A file is regenerated only when its text, its voice or the rendering
# below changed (hashes are kept in prompts/<lang>/.generated); --force
# regenerates all of them. A human recording (an <id>.wav other than the
# one this script wrote, or <id>.flac/.mp3/.ogg/...) is never overwritten:
# delete it to get the synthetic voice back. --only ID... limits the run.
#
# Needs: bash, espeak-ng, sox, sha256sum, awk.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# Voice settings. espeak-ng's default speed (175 wpm) is a little fast over
# a phone line for some, but regular callers type ahead and the files stay
# small; 175 it is.
declare -A voice_of=([it]="it" [en]="en-gb")
speed=175
pitch=45
rms_target_db=-18
rate=8000

langs=()
only=()
force=0
mode=langs
for arg in "$@"; do
    case "$arg" in
        --force) force=1 ;;
        --only) mode=only ;;
        -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) if [[ $mode == only ]]; then only+=("$arg"); else langs+=("$arg"); fi ;;
    esac
done
[[ ${#langs[@]} -gt 0 ]] || langs=(it en)

for tool in espeak-ng sox sha256sum awk; do
    command -v "$tool" >/dev/null || { echo "missing tool: $tool (apt-get install espeak-ng sox)" >&2; exit 1; }
done

tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Print "section<TAB>id<TAB>text" for each `id = "text"` line of a catalogue.
parse_catalogue() {
    awk '
        /^[[:space:]]*(#|$)/ { next }
        /^\[[a-z]+\][[:space:]]*(#.*)?$/ { gsub(/[][[:space:]]|#.*/, ""); section = $0; next }
        match($0, /^[a-z0-9_]+[[:space:]]*=[[:space:]]*"[^"]*"[[:space:]]*(#.*)?$/) {
            id = $0; sub(/[[:space:]]*=.*/, "", id)
            text = $0; sub(/^[^"]*"/, "", text); sub(/".*/, "", text)
            printf "%s\t%s\t%s\n", section, id, text
            next
        }
        { printf "%s:%d: cannot parse: %s\n", FILENAME, NR, $0 > "/dev/stderr"; exit 1 }
    ' "$1"
}

# espeak-ng text → normalised 8 kHz WAV.
render() {
    local voice="$1" text="$2" out="$3"
    espeak-ng -v "$voice" -s "$speed" -p "$pitch" -w "$tmp/raw.wav" -- "$text"
    # Trim: drop leading silence, reverse, drop it again, reverse back.
    sox -R "$tmp/raw.wav" -r "$rate" -c 1 -b 16 -e signed-integer "$tmp/trim.wav" \
        highpass 100 \
        silence 1 0.01 -45d reverse silence 1 0.01 -45d reverse
    local rms gain
    rms="$(sox "$tmp/trim.wav" -n stats 2>&1 | awk '/^RMS lev dB/ { print $4 }')"
    gain="$(awk -v r="$rms" -v t="$rms_target_db" 'BEGIN { printf "%.2f", t - r }')"
    sox -R "$tmp/trim.wav" -r "$rate" -c 1 -b 16 -e signed-integer "$out" \
        gain -l "$gain" fade h 0.005 -0 0.005 pad 0 0.03
}

# What the audio depends on besides the text and voice: the render
# function and its settings (not the rest of this file, so editing a
# comment here regenerates nothing).
render_hash="$( { declare -f render; echo "$speed $pitch $rms_target_db $rate"; } | sha256sum | cut -c1-16)"

wav_hash() { sha256sum "$1" | cut -c1-16; }

made=0
kept=0
for lang in "${langs[@]}"; do
    dir="$root/prompts/$lang"
    catalogue="$dir/catalogue.toml"
    [[ -f $catalogue ]] || { echo "no catalogue: $catalogue" >&2; exit 1; }
    # One line per generated file: id, hash of what made it, hash of the WAV.
    stamps="$dir/.generated"
    touch "$stamps"
    parse_catalogue "$catalogue" >"$tmp/entries"
    declare -A override=()
    while IFS=$'\t' read -r section id text; do
        [[ $section == voices ]] && override[$id]="$text"
    done <"$tmp/entries"
    : >"$tmp/stamps.new"
    while IFS=$'\t' read -r section id text; do
        [[ $section == prompts || $section == fragments ]] || continue
        out="$dir/$id.wav"
        old_input="" old_wav=""
        read -r old_input old_wav < <(awk -F'\t' -v id="$id" '$1 == id { print $2, $3 }' "$stamps") || true
        ours=0
        [[ -f $out && -n ${old_wav:-} && $(wav_hash "$out") == "$old_wav" ]] && ours=1
        # A human recording: a WAV this script did not write, or the same
        # id in another format. Keep it, and drop our WAV beside it so
        # that each id has one file.
        recorded=""
        for f in "$dir/$id".*; do
            [[ -e $f && $f != "$out" ]] && recorded="$f"
        done
        if [[ -f $out && $ours -eq 0 ]]; then recorded="$out"; fi
        if [[ -n $recorded ]]; then
            if [[ $ours -eq 1 ]]; then
                rm -f "$out"
            fi
            echo "keep $lang/$(basename "$recorded") (recorded)"
            kept=$((kept + 1))
            continue
        fi
        if [[ ${#only[@]} -gt 0 && " ${only[*]} " != *" $id "* ]]; then
            awk -F'\t' -v id="$id" '$1 == id' "$stamps" >>"$tmp/stamps.new"
            continue
        fi
        voice="${override[$id]:-${voice_of[$lang]}}"
        input="$(printf '%s\t%s\t%s' "$render_hash" "$voice" "$text" | sha256sum | cut -c1-16)"
        if [[ $force -eq 1 || ${old_input:-} != "$input" || ! -f $out ]]; then
            render "$voice" "$text" "$out"
            made=$((made + 1))
        fi
        printf '%s\t%s\t%s\n' "$id" "$input" "$(wav_hash "$out")" >>"$tmp/stamps.new"
    done <"$tmp/entries"
    sort "$tmp/stamps.new" >"$stamps"
    unset override
done

echo "generated $made file(s), kept $kept recording(s)"
du -sh --apparent-size "${langs[@]/#/$root/prompts/}"
