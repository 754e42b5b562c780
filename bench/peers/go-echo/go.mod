module echo-lab/go-echo

go 1.19
