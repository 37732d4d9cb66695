# summary: decoration chain k8s -> rdns -> zones -> cidr -> select on flow points (10,000 pods), per stage and whole, plus points per CPU-second of one thread (criterion)
# needs: nothing
# usage: [criterion arguments]
criterion_bench tapline-processors decoration
# the bench's own CPU-time figure (printed by its cpu_report group, also under --test)
v=$(sed -n 's/^decoration chain: \([0-9]*\) points per CPU-second.*/\1/p' "$BENCH_DIR/criterion.log" | tail -1)
[[ -n $v ]] || die "the bench printed no 'decoration chain: N points per CPU-second' line"
emit "whole chain, points per CPU-second of one thread" "$v" "points/s"
