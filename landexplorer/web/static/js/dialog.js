// Dialogs of the page (sign in, my layers, share, groups, tokens, password): the browser's
// own <dialog>, so Escape closes them, focus stays inside and returns where it was.

export function openDialog(id) {
  const dialog = document.getElementById(id);
  if (!dialog.open) dialog.showModal();
  const first = dialog.querySelector("input:not([type=hidden]):not([readonly]), select, button:not(.dialog-close)");
  if (first) first.focus();
  return dialog;
}

export function closeDialog(id) {
  const dialog = document.getElementById(id);
  if (dialog.open) dialog.close();
}

// Every dialog's close buttons (class "dialog-close") close it.
export function wireDialogs() {
  for (const button of document.querySelectorAll("dialog .dialog-close")) {
    button.addEventListener("click", () => button.closest("dialog").close());
  }
}

// Copy the text of ``input`` to the clipboard; says how it went on ``button``.
export async function copyFrom(input, button) {
  input.select();
  let copied = false;
  try {
    await navigator.clipboard.writeText(input.value);
    copied = true;
  } catch (_) {
    try { copied = document.execCommand("copy"); } catch (__) { copied = false; }
  }
  const before = button.dataset.label || button.textContent;
  button.dataset.label = before;
  button.textContent = copied ? "Copied" : "Select and copy it yourself";
  setTimeout(() => { button.textContent = before; }, 2500);
  return copied;
}

// A date-and-time from the API ("2026-12-03T11:41:49Z") in the reader's own words.
export function when(text) {
  if (!text) return "never";
  const date = new Date(text);
  if (Number.isNaN(date.getTime())) return String(text);
  return date.toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
