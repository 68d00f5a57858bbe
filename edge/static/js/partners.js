// Registering a referral partner, or changing its name and commission, from the referral
// dashboard: PUT /api/admin/partners/{code}, which asks referral_svc (UpsertPartner).

import { api } from "./api.js";
import { byId, say } from "./dom.js";

let afterSave = () => {};

/** Wire the form once; `onSaved(message)` runs after a partner is stored. */
export function mountPartners(onSaved) {
  afterSave = onSaved;
  const form = byId("partner-form");
  byId("partner-new").addEventListener("click", () => openPartnerForm());
  byId("partner-cancel").addEventListener("click", closePartnerForm);
  form.addEventListener("submit", save);
}

/** Open the form, filled from a dashboard row (`item`) or empty for a new code. */
export function openPartnerForm(item) {
  const form = byId("partner-form");
  const code = form.elements.referral_code;
  const editing = Boolean(item?.partner_registered);
  byId("partner-title").textContent = editing
    ? `Edit partner ${item.referral_code}`
    : item ? `Register partner ${item.referral_code}` : "Register a partner";
  code.value = item?.referral_code || "";
  // A row's code is the one its conversions were counted under: not to be retyped.
  code.readOnly = Boolean(item);
  form.elements.name.value = item?.partner_name || "";
  form.elements.commission.value = item?.commission_bp ? String(item.commission_bp / 100) : "";
  say(byId("partner-error"), "");
  form.hidden = false;
  form.scrollIntoView({ block: "nearest" });
  (item ? form.elements.name : code).focus();
}

export function closePartnerForm() {
  byId("partner-form").hidden = true;
}

async function save(event) {
  event.preventDefault();
  const form = byId("partner-form");
  const button = byId("partner-save");
  const code = form.elements.referral_code.value.trim();
  const percent = Number(form.elements.commission.value);
  button.disabled = true;
  let saved;
  try {
    saved = await api(`partners/${encodeURIComponent(code)}`, {
      method: "PUT",
      // Basis points: 10 % is 1000; the form's step of 0.01 % makes this whole.
      body: { name: form.elements.name.value.trim(), commission_bp: Math.round(percent * 100) },
    });
  } catch (failure) {
    say(byId("partner-error"), failure.message);
    return;
  } finally {
    button.disabled = false;
  }
  closePartnerForm();
  const who = saved.name ? `${saved.referral_code} (${saved.name})` : saved.referral_code;
  afterSave(`Partner ${who} ${saved.created ? "registered" : "updated"}: `
    + `${saved.commission_bp / 100} % commission.`);
}
