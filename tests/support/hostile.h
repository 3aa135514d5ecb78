/* The test server's hostile routes (hostile.c): a raw-socket listener for
 * misbehaving HTTP that libmicrohttpd cannot produce. */
#ifndef WPOOL_TEST_HOSTILE_H
#define WPOOL_TEST_HOSTILE_H

/* Starts the listener on 127.0.0.1: *port serves the hostile routes,
 * *silent_port accepts and never reads. Returns 0 or -1. */
int hostile_start(unsigned *port, unsigned *silent_port);
/* Ends every connection and joins every thread. */
void hostile_stop(void);

#endif
