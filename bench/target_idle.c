// Benchmark target: the smallest process worth dumping. Writes `READY {"pid":N}` and sleeps until killed.
#include <stdio.h>
#include <unistd.h>

int main(void)
{
	printf("READY {\"pid\":%d}\n", (int)getpid());
	fflush(stdout);
	for (;;)
		pause();
}
