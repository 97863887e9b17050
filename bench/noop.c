/* noop.c: a dynamically linked program that does nothing, for timing
 * process start (bench/spawn.c). */
int main(void)
{
	return 0;
}
