// go-noop: the pipeline of "Building a Worker Pool in Go" with a no-op task,
// the Go peer of bench/pool_noop.c.
//
//	producer → jobs (buffered) → N workers → results (buffered) → collector
//
// The shape is the post's, step for step: buffered jobs and results channels,
// N worker goroutines ranging over jobs and sending task results, a producer
// goroutine that closes jobs, a collector goroutine that closes done, and the
// shutdown order wg.Wait(); close(results); <-done.
//
// Buffer (-buf) applies to both channels, as in the post. The post uses
// NUM_JOBS for both (the producer never blocks); the default here is
// 2*workers, the same bound as wpool's default max_outstanding, so that both
// peers run with backpressure. -buf 0 means NUM_JOBS (the post's setting).
//
// Timed: from just before the producer starts (workers and collector already
// running) until the collector has received the last result. Standard
// library only; time.Now() carries the monotonic clock.
//
// Output, one line:
//
//	go workers=W jobs=N mode=chan seconds=S jobs_per_s=R
//
// Exits 1 unless every result arrived exactly once (count and sum of IDs).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"sync"
	"time"
)

// Job and Result are the post's types.
type Job struct {
	ID  int
	URL string
}

type Result struct {
	ID    int
	Value string
	Err   error
}

// run is the task: it does nothing and succeeds.
func run(ctx context.Context, job *Job) Result {
	return Result{ID: job.ID}
}

func worker(ctx context.Context, id int, jobs <-chan Job, results chan<- Result, wg *sync.WaitGroup) {
	defer wg.Done()
	for job := range jobs {
		results <- run(ctx, &job)
	}
}

func main() {
	numJobs := flag.Int("jobs", 1000000, "number of jobs")
	numWorkers := flag.Int("workers", 1, "number of worker goroutines")
	buf := flag.Int("buf", -1, "buffer of the jobs and results channels (default 2*workers; 0 = jobs, the post's setting)")
	flag.Parse()
	if flag.NArg() != 0 || *numJobs < 1 || *numWorkers < 1 || *buf < -1 {
		fmt.Fprintln(os.Stderr, "usage: go-noop [-jobs N>=1] [-workers W>=1] [-buf B>=0]")
		os.Exit(2)
	}
	bufSize := *buf
	if bufSize == -1 {
		bufSize = 2 * *numWorkers
	} else if bufSize == 0 {
		bufSize = *numJobs
	}

	ctx := context.Background()
	jobs := make(chan Job, bufSize)
	results := make(chan Result, bufSize)

	var wg sync.WaitGroup
	for i := 0; i < *numWorkers; i++ { // the post's "range NUM_WORKERS" needs Go 1.22
		wg.Add(1)
		go worker(ctx, i, jobs, results, &wg)
	}

	var count, errs int
	var sum uint64
	var end time.Time
	done := make(chan struct{})
	go func() {
		for result := range results {
			if result.Err != nil {
				errs++
			}
			count++
			sum += uint64(result.ID)
			if count == *numJobs {
				end = time.Now()
			}
		}
		close(done)
	}()

	start := time.Now()
	go func() {
		for i := 1; i <= *numJobs; i++ {
			jobs <- Job{ID: i}
		}
		close(jobs)
	}()

	wg.Wait()
	close(results)
	<-done

	n := uint64(*numJobs)
	if count != *numJobs || sum != n*(n+1)/2 || errs != 0 {
		fmt.Fprintf(os.Stderr, "go-noop: results wrong: count=%d (want %d) sum=%d (want %d) errors=%d\n",
			count, *numJobs, sum, n*(n+1)/2, errs)
		os.Exit(1)
	}
	secs := end.Sub(start).Seconds()
	fmt.Printf("go workers=%d jobs=%d mode=chan seconds=%.6f jobs_per_s=%.0f\n",
		*numWorkers, *numJobs, secs, float64(*numJobs)/secs)
}
