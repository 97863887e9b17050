/* fuzz_proto.c: libFuzzer target for the wire-protocol decoder. Whatever
 * decodes must encode again and decode to the same message: the decoder
 * accepts nothing the encoder would refuse to write. The shim's codec
 * (proto_encode_ask, proto_decode_answer) must agree with it on every
 * message it takes. The same bytes, read as a note ring the program
 * wrote, are taken slot by slot as the broker takes them: never more than
 * the ring holds, never a length out of bounds.
 *
 *   make fuzz FUZZ_SECONDS=60                     all targets
 *   build/fuzz/fuzz_proto CRASH-FILE              replays one input */
#include <stdlib.h>
#include <string.h>

#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len);

/* data as a note ring: its header (head, tail) and slots. */
static void ring_read(const uint8_t *data, size_t len)
{
	static struct proto_ring r;
	uint8_t slot[PROTO_RING_SLOT];
	uint32_t tail;
	size_t n, taken = 0;
	int rc;

	memset(&r, 0, sizeof r);
	memcpy(&r, data, len < sizeof r ? len : sizeof r);
	tail = r.tail;
	while ((rc = proto_ring_take(&r, &tail, slot, &n)) == 1) {
		static struct proto_msg m;

		if (n == 0 || n >= PROTO_RING_SLOT || ++taken > PROTO_RING_SLOTS)
			abort();
		proto_decode(slot, n, &m);
	}
	if (rc == 0 && tail != r.head)
		abort(); /* empty, but not all taken */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	static struct proto_msg m, again;
	static uint8_t out[PROTO_MSG_MAX];
	ssize_t n;

	ring_read(data, len);
	memset(&m, 0, sizeof m);
	if (proto_decode(data, len, &m) != 0)
		return 0;
	n = proto_encode(&m, out, sizeof out);
	if (n < 0 || (size_t)n != len || memcmp(out, data, len) != 0)
		abort(); /* decoded, but not what the encoder writes */
	memset(&again, 0, sizeof again);
	if (proto_decode(out, (size_t)n, &again) != 0 || again.type != m.type || again.id != m.id)
		abort();
	if (m.type == PROTO_ASK || m.type == PROTO_NOTE) {
		const struct proto_ask *q = m.type == PROTO_ASK ? &m.u.ask : &m.u.note.ask;
		if (proto_encode_ask(m.type, m.id, q, m.type == PROTO_NOTE ? m.u.note.action : 0, out,
				     sizeof out) != n ||
		    memcmp(out, data, len) != 0)
			abort();
	}
	if (m.type == PROTO_RING && m.id == 0 && /* the shim's bell: id 0 */
	    (proto_encode_ring(out, sizeof out) != n || memcmp(out, data, len) != 0))
		abort();
	{
		struct proto_verdict v;
		uint16_t type;
		uint32_t id;
		int32_t err;
		int rc = proto_decode_answer(data, len, &type, &id, &v, &err);

		if ((m.type == PROTO_VERDICT || m.type == PROTO_ERROR) != (rc == 0) ||
		    (rc == 0 && (type != m.type || id != m.id)) ||
		    (rc == 0 && type == PROTO_VERDICT && memcmp(&v, &m.u.verdict, sizeof v) != 0) ||
		    (rc == 0 && type == PROTO_ERROR && err != m.u.error))
			abort();
	}
	return 0;
}
