module go-noop

go 1.19
