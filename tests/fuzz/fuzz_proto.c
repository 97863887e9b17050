/* fuzz_proto.c: libFuzzer target for the wire-protocol decoder. Whatever
 * decodes must encode again and decode to the same message: the decoder
 * accepts nothing the encoder would refuse to write.
 *
 *   make fuzz FUZZ_SECONDS=60                     all targets
 *   build/fuzz/fuzz_proto CRASH-FILE              replays one input */
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static struct proto_msg m, again;
	static uint8_t out[PROTO_MSG_MAX];
	ssize_t n;

	memset(&m, 0, sizeof m);
	if (proto_decode(data, len, &m) != 0)
		return 0;
	n = proto_encode(&m, out, sizeof out);
	if (n < 0 || (size_t)n != len || memcmp(out, data, len) != 0)
		abort(); /* decoded, but not what the encoder writes */
	memset(&again, 0, sizeof again);
	if (proto_decode(out, (size_t)n, &again) != 0 || again.type != m.type || again.id != m.id)
		abort();
	return 0;
}
