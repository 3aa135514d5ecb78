// go-fetch: the fetch pipeline of "Building a Worker Pool in Go", the Go
// peer of `wpool fetch` in bench/fetch.sh.
//
//	producer → jobs (buffered) → N workers → results (buffered) → collector
//
// The shape is the post's, step for step: Job{ID, URL} and Result{ID, Value,
// Err}; buffered jobs and results channels; N worker goroutines ranging over
// jobs and sending run(ctx, &job) to results; a producer goroutine that
// closes jobs; a collector goroutine that closes done; and the shutdown order
// wg.Wait(); close(results); <-done.
//
// The task is the post's task.Run: http.NewRequestWithContext, client.Do,
// Result{Value: resp.Status}. Two variants:
//
//   - as written (default): http.DefaultClient and `defer resp.Body.Close()`
//     WITHOUT reading the body, exactly as in the post. Closing a body that
//     was not read to EOF makes net/http close the connection instead of
//     returning it to the idle pool, so keep-alive never happens here: every
//     request opens a new TCP connection. (Even if it did read the body,
//     DefaultTransport keeps only MaxIdleConnsPerHost = 2 idle connections
//     per host, so with many workers most connections would still be
//     closed after one use.) That is the program as the post wrote it.
//   - -tuned: a Transport cloned from http.DefaultTransport with
//     MaxIdleConnsPerHost = MaxIdleConns = workers, and the body read to
//     io.Discard before Close, so that every worker keeps its connection.
//
// Differences from the post, none of which favour wpool:
//
//   - The URLs come from a file (or standard input) and the producer streams
//     them into jobs as it reads them; with -buf 0 it reads them all first
//     and sizes both channels to their number (the post's NUM_JOBS).
//     The default buffer is 2*workers, the same bound as wpool's default
//     --queue, so both run with backpressure and bounded memory.
//   - The collector writes the post's line per result ("job %d done: %s" or
//     "job %d failed: %v") through a 64 KiB bufio.Writer, where the post's
//     fmt.Printf writes unbuffered os.Stdout (one write(2) per result).
//     wpool buffers its output the same way, so this compares fetching, not
//     output.
//   - IDs count from 1 (wpool's numbering), not from 0.
//   - Each line ends with the task's own time, " (1.234ms)": from just before
//     run() to just after it (request, response, body), what wpool's
//     elapsed_ms and curl's %{time_total} measure, for the latency table.
//
// At the end, to standard error, one line the benchmark parses:
//
//	go-fetch urls=N workers=W tuned=T ok200=K other=O errors=E seconds=S
//
// followed by one line per distinct status/error text with its count.
// Exits 1 unless every URL got exactly one result (count and sum of IDs) and
// every result is "200 OK". Standard library only.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
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
	took  time.Duration // not the post's: the task's own time, for bench/fetch.sh's latency table
}

var (
	client = http.DefaultClient
	tuned  bool
)

// run is the post's task.Run. As written it closes the body unread; tuned,
// it drains the body first so that the connection can be reused.
func run(ctx context.Context, job *Job) Result {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, job.URL, nil)
	if err != nil {
		return Result{ID: job.ID, Err: fmt.Errorf("request error: %w", err)}
	}

	resp, err := client.Do(req)
	if err != nil {
		return Result{ID: job.ID, Err: fmt.Errorf("fetch failed: %w", err)}
	}
	defer resp.Body.Close() // as written: the body is never read (no keep-alive)

	if tuned {
		if _, err := io.Copy(io.Discard, resp.Body); err != nil {
			return Result{ID: job.ID, Err: fmt.Errorf("reading body: %w", err)}
		}
	}
	return Result{ID: job.ID, Value: resp.Status}
}

func worker(ctx context.Context, id int, jobs <-chan Job, results chan<- Result, wg *sync.WaitGroup) {
	defer wg.Done()
	for job := range jobs {
		t0 := time.Now()
		r := run(ctx, &job)
		r.took = time.Since(t0)
		results <- r
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func die(format string, a ...interface{}) {
	fmt.Fprintf(os.Stderr, "go-fetch: "+format+"\n", a...)
	os.Exit(2)
}

func main() {
	numWorkers := flag.Int("workers", 1, "number of worker goroutines")
	flag.BoolVar(&tuned, "tuned", false, "MaxIdleConnsPerHost = MaxIdleConns = workers, and read each body to io.Discard")
	buf := flag.Int("buf", -1, "buffer of the jobs and results channels (default 2*workers; 0 = number of URLs, the post's setting)")
	flag.Usage = func() {
		fmt.Fprintln(os.Stderr, "usage: go-fetch [-workers W] [-tuned] [-buf B] [FILE|-]")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() > 1 || *numWorkers < 1 || *buf < -1 {
		flag.Usage()
		os.Exit(2)
	}

	var in io.Reader = os.Stdin
	if flag.NArg() == 1 && flag.Arg(0) != "-" {
		f, err := os.Open(flag.Arg(0))
		if err != nil {
			die("%v", err)
		}
		defer f.Close()
		in = f
	}
	scanner := bufio.NewScanner(in)
	scanner.Buffer(make([]byte, 64*1024), 1<<20)

	if tuned {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.MaxIdleConns = *numWorkers
		t.MaxIdleConnsPerHost = *numWorkers
		client = &http.Client{Transport: t}
	}

	// -buf 0: the post's setting, both channels as large as the job list,
	// which must then be read first (the post's `urls` slice).
	var urls []string
	bufSize := *buf
	if bufSize == -1 {
		bufSize = 2 * *numWorkers
	} else if bufSize == 0 {
		for scanner.Scan() {
			if line := scanner.Text(); line != "" {
				urls = append(urls, line)
			}
		}
		if err := scanner.Err(); err != nil {
			die("reading URLs: %v", err)
		}
		bufSize = len(urls)
	}

	ctx := context.Background()
	jobs := make(chan Job, bufSize)
	results := make(chan Result, bufSize)

	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < *numWorkers; i++ { // the post's "range NUM_WORKERS" needs Go 1.22
		wg.Add(1)
		go worker(ctx, i, jobs, results, &wg)
	}

	out := bufio.NewWriterSize(os.Stdout, 64*1024)
	var count, errs int
	var sum uint64
	counts := map[string]int{}
	done := make(chan struct{})
	go func() {
		for result := range results {
			count++
			sum += uint64(result.ID)
			if result.Err != nil {
				errs++
				counts["error: "+result.Err.Error()]++
				fmt.Fprintf(out, "job %d failed: %v (%.3fms)\n", result.ID, result.Err, ms(result.took))
			} else {
				counts[result.Value]++
				fmt.Fprintf(out, "job %d done: %s (%.3fms)\n", result.ID, result.Value, ms(result.took))
			}
		}
		close(done)
	}()

	var nread int
	var readErr error
	go func() {
		if urls != nil {
			for i, url := range urls {
				jobs <- Job{ID: i + 1, URL: url}
			}
			nread = len(urls)
		} else {
			for scanner.Scan() {
				if line := scanner.Text(); line != "" {
					nread++
					jobs <- Job{ID: nread, URL: line}
				}
			}
			readErr = scanner.Err()
		}
		close(jobs)
	}()

	wg.Wait()      // Wait for all workers to finish
	close(results) // Signal collector there are no more results
	<-done         // Wait for collector to drain and exit
	secs := time.Since(start).Seconds()
	if err := out.Flush(); err != nil {
		die("writing results: %v", err)
	}
	if readErr != nil {
		die("reading URLs: %v", readErr)
	}

	n := uint64(nread)
	ok200 := counts["200 OK"]
	fmt.Fprintf(os.Stderr, "go-fetch urls=%d workers=%d tuned=%v ok200=%d other=%d errors=%d seconds=%.3f\n",
		nread, *numWorkers, tuned, ok200, count-ok200-errs, errs, secs)
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(os.Stderr, "  %d %s\n", counts[k], k)
	}
	if count != nread || sum != n*(n+1)/2 || ok200 != nread {
		fmt.Fprintf(os.Stderr, "go-fetch: results wrong: count=%d (want %d) sum=%d (want %d) 200 OK=%d errors=%d\n",
			count, nread, sum, n*(n+1)/2, ok200, errs)
		os.Exit(1)
	}
}
