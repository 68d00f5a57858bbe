"""Bodies at the edge of what the webhook accepts, shared by the tests and
`python -m bench.hostile_bodies`."""

from urllib.parse import quote

from edge.amocrm_form import DEFAULT_LIMITS, FormLimits

PAD_FIELD_CHARS = 16_000


def padded_account_body(limits: FormLimits = DEFAULT_LIMITS) -> bytes:
    """As many leads as a body may carry, and an account block padded to fill the
    rest of the size limit: once copied into every lead's row, 500 copies of it."""
    leads = "&".join(
        f"leads%5Bstatus%5D%5B{n}%5D%5Bid%5D={n + 1}" for n in range(limits.max_leads)
    )
    head = "account%5Bsubdomain%5D=onaiagencykz&account%5Bid%5D=32145678"
    room = limits.max_body_bytes - len(head) - len(leads) - 2
    pads, n = [], 0
    while room > 0:
        name = f"account%5Bpad{n}%5D="
        chars = min(PAD_FIELD_CHARS, room - len(name) - 1)
        if chars <= 0:
            break
        pads.append(name + "x" * chars)
        room -= len(pads[-1]) + 1
        n += 1
    body = "&".join([head, *pads, leads]).encode()
    assert len(body) <= limits.max_body_bytes
    return body


def deep_fields_body(limits: FormLimits = DEFAULT_LIMITS) -> bytes:
    """The issue's crafted body: fields as many and as deep as allowed, under a name
    that is not AmoCRM's."""
    deep = "".join(f"[{c}]" for c in "abcdefg")
    return "&".join(f"x{n}{deep}=1" for n in range(limits.max_keys - 1)).encode()


def deep_leads_body(limits: FormLimits = DEFAULT_LIMITS) -> bytes:
    """The costliest body the nesting still accepts: every field makes new custom-field
    containers in AmoCRM's own shape, up to the container limit, the rest of the field
    limit spent on fields that share a lead."""
    fields = []
    per_field = 3  # a custom field, its value list, the value
    leads_used = 0
    k = 0
    while len(fields) * per_field + 4 * (leads_used + 1) + 2 < limits.max_groups - per_field:
        lead, cf = divmod(k, limits.max_index)
        leads_used = lead + 1
        fields.append(
            f"leads[status][{lead}][custom_fields][{cf}][values][0][value]=v"
        )
        k += 1
    n = 0
    while len(fields) < limits.max_keys - leads_used - 1:
        fields.append(f"leads[status][0][f{n}]=1")
        n += 1
    fields += [f"leads[status][{lead}][id]={lead + 1}" for lead in range(leads_used)]
    body = "&".join(quote(f, safe="[]=") for f in fields).encode()
    assert len(body) <= limits.max_body_bytes, len(body)
    return body


def wide_lead_body(limits: FormLimits = DEFAULT_LIMITS) -> bytes:
    """One new container per field, the container limit's worth, in AmoCRM's own shape:
    custom fields of one lead with only an id each (each is a field lookup, a new
    container and, at the end, a dict of its own); the rest of the field limit spent
    on fields of the lead."""
    fields = [
        f"leads[status][0][custom_fields][{k}][id]={k + 1}" for k in range(limits.max_groups - 4)
    ]
    fields += [f"leads[status][0][f{n}]=1" for n in range(limits.max_keys - len(fields) - 1)]
    fields.append("leads[status][0][id]=1")
    body = "&".join(quote(f, safe="[]=") for f in fields).encode()
    assert len(body) <= limits.max_body_bytes, len(body)
    return body
