# summary: pipeline framework: synthetic source -> 3 attributes processors -> nop, 200 batches of 1,000 points per iteration, data points per second on one core (criterion)
# needs: nothing
# usage: [criterion arguments, e.g. --measurement-time 5]
criterion_bench tapline pipeline
