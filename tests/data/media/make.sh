#!/bin/sh
# Regenerates the media test files (needs espeak-ng and sox).
# talk-off-speech.ogg: 192 s of speech for conformance case A14, 8 s from
# each of 24 espeak-ng renderings (Italian, English, German, Spanish voices,
# male/female variants, two pitches, speeds 130-210 wpm), 8 kHz mono,
# normalised to -3 dBFS, Vorbis at the lowest quality to stay small.
set -e
cd "$(dirname "$0")"
tmp=$(mktemp -d)
i=0
for v in it it+m3 it+f2 en en+f3 en+m7 de+f1 es+m2 it+klatt it+Marco en+Annie it+f5; do
  for p in 25 70; do
    i=$((i+1)); lang=${v%%+*}
    case $lang in en|de) txt=en.txt ;; *) txt=it.txt ;; esac
    espeak-ng -v "$v" -p $p -s $((130 + (i*7)%80)) -f "$txt" -w "$tmp/raw$i.wav"
    sox "$tmp/raw$i.wav" -r 8000 -c 1 "$tmp/seg$(printf %02d $i).wav" trim 1 8
  done
done
sox "$tmp"/seg*.wav "$tmp/talk.wav" norm -3
sox "$tmp/talk.wav" -C -1 talk-off-speech.ogg
sox -n -r 16000 -c 1 tone-1k-16k.flac synth 0.25 sine 1000 vol 0.5
sox -n -r 22050 -c 2 tone-1k-22k-stereo.ogg synth 0.25 sine 1000 vol 0.5
sox -n -r 44100 -c 1 tone-1k-44k.mp3 synth 0.25 sine 1000 vol 0.5
rm -r "$tmp"
