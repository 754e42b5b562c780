module echo-lab/handoff-go

go 1.19
