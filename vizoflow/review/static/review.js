// Filters that apply on change (no inline handlers: the page's Content-Security-Policy allows scripts from this server only).
document.querySelectorAll("select[data-submit]").forEach((select) => {
  select.addEventListener("change", () => select.form.submit());
});
