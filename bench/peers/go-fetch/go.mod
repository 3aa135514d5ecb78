module go-fetch

go 1.19
