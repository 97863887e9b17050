/* name.c: DNS names as the policy compares them. */
#include <string.h>

#include "policy.h"

int policy_name_normalise(const char *name, char *out, size_t cap)
{
	size_t len, label = 0;

	if (!name)
		return -1;
	len = strlen(name);
	if (len && name[len - 1] == '.')
		len--;
	if (len == 0 || len > PROTO_NAME_MAX || len + 1 > cap)
		return -1;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];

		if (c == '.') {
			if (label == 0)
				return -1; /* leading dot or ".." */
			label = 0;
		} else if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
			   c == '_') {
			label++;
		} else if (c >= 'A' && c <= 'Z') {
			c = (char)(c - 'A' + 'a');
			label++;
		} else {
			return -1;
		}
		if (label > 63)
			return -1;
		out[i] = c;
	}
	if (label == 0)
		return -1; /* "a.." once the trailing dot is gone */
	out[len] = 0;
	return 0;
}
