// The app's keyboard layer (see app/keyboard.py): one listener on the window, in the capture
// phase, so that it sees every key before Streamlit's own button shortcuts (bound on the
// document) and can keep those from firing while a box of ours takes text.
//
// Everything the server sends (class names included) arrives as JSON data and is set with
// textContent, never as HTML.

const STATE = (window.__bananaKeys ??= { label: null, installed: false });
// The open box outlives its element: a rerun may mount the pane's element anew while the user
// types, and until then the keys are kept here, never passed on to the shortcuts.
STATE.box ??= { mode: null, text: "", enter: false };

const OUR_HOST = "banana-keys-host";

function isEditable(element) {
  if (!element) return false;
  const tag = element.tagName;
  return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || element.isContentEditable;
}

/** The element that has the focus, looking into shadow roots. */
function deepActive() {
  let active = document.activeElement;
  while (active && active.shadowRoot && active.shadowRoot.activeElement) active = active.shadowRoot.activeElement;
  return active;
}

/** Give the focus back to the page (the main pane), away from any widget. */
function focusPane() {
  const active = document.activeElement;
  if (active && active !== document.body && typeof active.blur === "function") active.blur();
  const main = document.querySelector('[data-testid="stMain"]');
  if (main) {
    if (!main.hasAttribute("tabindex")) main.setAttribute("tabindex", "-1");
    main.style.outline = "none";
    main.focus({ preventScroll: true });
  }
}

/** After a widget was used: if the focus stayed on a control that is not a text field the user
 * types in (a button, a check box, a select box's input), hand it back to the page. */
function releaseWidget() {
  const active = deepActive();
  if (!active || active === document.body) return;
  if (active.closest && active.closest("." + OUR_HOST)) return;
  const host = active.getRootNode && active.getRootNode().host;
  if (host && host.closest && host.closest("." + OUR_HOST)) return;
  const role = active.getAttribute && active.getAttribute("role");
  const type = active.type;
  if (
    active.tagName === "BUTTON" ||
    active.tagName === "SUMMARY" ||
    active.tagName === "A" ||
    role === "combobox" ||
    role === "option" ||
    role === "tab" ||
    type === "checkbox" ||
    type === "radio"
  ) {
    focusPane();
  }
}

function stop(event) {
  event.preventDefault();
  event.stopPropagation();
  event.stopImmediatePropagation();
}

function labelPane() {
  const label = STATE.label;
  return label && label.root.isConnected ? label : null;
}

function onKeyDown(event) {
  if (event.isComposing || event.keyCode === 229) return;
  const label = labelPane();
  if (label && label.mode) {
    label.handleKey(event);
    return;
  }
  if (STATE.box.mode) {
    stop(event); // between two elements of the pane: keep the keys for the next one
    if (event.key === "Escape") STATE.box.mode = null;
    else if (event.key === "Enter") STATE.box.enter = true;
    else if (event.key === "Backspace") STATE.box.text = STATE.box.text.slice(0, -1);
    else if (event.key.length === 1) STATE.box.text += event.key;
    return;
  }
  const active = deepActive();
  if (event.key === "Escape") {
    if (active && active !== document.body && active.getAttribute("data-testid") !== "stMain") {
      setTimeout(focusPane, 0); // after the widget's own Escape handling (a select box closes its list)
    }
    return;
  }
  if (event.key === "Enter" && active && active.getAttribute("role") === "combobox") {
    setTimeout(releaseWidget, 0); // an option chosen from the keyboard
    return;
  }
  const path = event.composedPath ? event.composedPath() : [event.target];
  if (path.some(isEditable) || event.ctrlKey || event.metaKey || event.altKey || !label) return;
  const key = event.key;
  if (key === "n" || key === "N") {
    stop(event);
    if (!event.repeat) label.open("new");
  } else if (key === "c" || key === "C") {
    stop(event);
    if (!event.repeat) label.open("pick");
  } else if (key === "?") {
    stop(event);
    if (!event.repeat) label.open("keys");
  } else if (key === "Backspace") {
    stop(event);
    if (event.repeat) return;
    const undo = document.querySelector(".st-key-undo button");
    if (undo && !undo.disabled) undo.click();
  }
}

function onClick(event) {
  const target = event.target;
  if (!target || !target.closest) return;
  const used = target.closest(
    'button, summary, [role="option"], [role="tab"], label:has(input[type="checkbox"]), label:has(input[type="radio"])',
  );
  if (used) setTimeout(releaseWidget, 0);
}

if (!STATE.installed) {
  window.addEventListener("keydown", onKeyDown, true);
  document.addEventListener("click", onClick, true);
  STATE.installed = true;
}

function element(tag, attributes = {}, text = null) {
  const made = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) made.setAttribute(name, value);
  if (text !== null) made.textContent = text;
  return made;
}

function kbd(text) {
  return element("kbd", {}, text);
}

/** The label pane's boxes: a new class's name, the class picker, the key map. */
class LabelKeys {
  constructor(root) {
    this.root = root;
    this.data = { classes: [], keymap: [] };
    this.shown = [];
    this.highlighted = 0;

    const bar = element("div", { class: "bar" });
    this.newButton = element("button", { type: "button", "data-testid": "banana-new-class" }, "New class ");
    this.newButton.append(kbd("N"));
    this.pickButton = element("button", { type: "button", "data-testid": "banana-pick-class" }, "All classes ");
    this.pickButton.append(kbd("C"));
    this.keysButton = element("button", { type: "button", "data-testid": "banana-key-map" }, "Keys ");
    this.keysButton.append(kbd("?"));
    bar.append(this.newButton, this.pickButton, this.keysButton);
    this.newButton.addEventListener("click", () => this.open("new"));
    this.pickButton.addEventListener("click", () => this.open("pick"));
    this.keysButton.addEventListener("click", () => this.open("keys"));

    this.newBox = element("div", { class: "new-class", hidden: "" });
    const newLabel = element("label", {}, "New class name");
    this.newInput = element("input", {
      type: "text",
      maxlength: "200",
      autocomplete: "off",
      spellcheck: "false",
      "aria-label": "New class name",
    });
    newLabel.append(this.newInput);
    this.newBox.append(newLabel, element("p", { class: "hint" }, "Enter adds the class and uses it for this image; Esc cancels."));

    this.picker = element("div", { class: "overlay", hidden: "", role: "dialog", "aria-label": "Choose a class" });
    const pickerPanel = element("div", { class: "panel" });
    this.filter = element("input", {
      type: "text",
      autocomplete: "off",
      spellcheck: "false",
      "aria-label": "Filter the classes",
      placeholder: "Type to filter the classes",
    });
    this.list = element("ul", { role: "listbox", "aria-label": "Classes" });
    pickerPanel.append(this.filter, this.list, element("p", { class: "hint" }, "↑ ↓ choose · Enter labels · Esc closes"));
    this.picker.append(pickerPanel);
    this.filter.addEventListener("input", () => {
      STATE.box.text = this.filter.value;
      this.renderList();
    });
    this.newInput.addEventListener("input", () => {
      STATE.box.text = this.newInput.value;
    });

    this.keyMap = element("div", { class: "overlay", hidden: "", role: "dialog", "aria-label": "Keys" });
    const keyPanel = element("div", { class: "panel", "data-testid": "banana-key-map-panel" });
    keyPanel.append(element("h3", {}, "Keys"));
    this.keyTable = element("table");
    keyPanel.append(this.keyTable, element("p", { class: "hint" }, "Esc or ? closes"));
    this.keyMap.append(keyPanel);
    for (const overlay of [this.picker, this.keyMap]) {
      overlay.addEventListener("mousedown", (event) => {
        if (event.target === overlay) this.close();
      });
    }

    root.append(bar, this.newBox, this.picker, this.keyMap);
  }

  get mode() {
    return STATE.box.mode;
  }

  set mode(mode) {
    STATE.box.mode = mode;
  }

  /** Show the box that was open when the pane's element was replaced, with what was typed. */
  restore() {
    const { mode, text, enter } = STATE.box;
    this.open(mode, text);
    STATE.box.enter = false;
    if (enter) this.handleKey(new KeyboardEvent("keydown", { key: "Enter" }));
  }

  update(data, setTriggerValue) {
    this.data = data;
    this.setTriggerValue = setTriggerValue;
    this.pickButton.hidden = data.classes.length === 0;
    this.keyTable.replaceChildren(
      ...data.keymap.map(([keys, action]) => {
        const row = element("tr");
        row.append(element("th", {}, keys), element("td", {}, action));
        return row;
      }),
    );
    if (this.mode === "pick") this.renderList();
  }

  open(mode, text = "") {
    if (mode === "pick" && this.data.classes.length === 0) mode = "new";
    this.close(false);
    this.mode = mode;
    this.sent = false;
    STATE.box.text = text;
    STATE.box.enter = false;
    if (mode === "new") {
      this.newInput.value = text;
      this.newBox.hidden = false;
      this.newInput.focus();
    } else if (mode === "pick") {
      this.filter.value = text;
      this.highlighted = 0;
      this.renderList();
      this.picker.hidden = false;
      this.filter.focus();
    } else {
      this.keyMap.hidden = false;
      this.keyMap.querySelector(".panel").setAttribute("tabindex", "-1");
      this.keyMap.querySelector(".panel").focus();
    }
  }

  close(refocus = true) {
    this.mode = null;
    this.newBox.hidden = true;
    this.picker.hidden = true;
    this.keyMap.hidden = true;
    if (refocus) focusPane();
  }

  renderList() {
    const wanted = this.filter.value.trim().toLowerCase();
    this.shown = this.data.classes.filter((c) => c.name.toLowerCase().includes(wanted));
    this.highlighted = Math.max(0, Math.min(this.highlighted, this.shown.length - 1));
    this.list.replaceChildren(
      ...this.shown.map((c, index) => {
        const item = element("li", { role: "option", "aria-selected": String(index === this.highlighted) });
        item.append(element("span", { class: "name" }, c.name));
        if (c.key) item.append(kbd(c.key));
        item.addEventListener("mousedown", (event) => {
          event.preventDefault();
          this.pick(c.id);
        });
        return item;
      }),
    );
    if (this.shown.length === 0) this.list.append(element("li", { class: "none" }, "No class matches"));
    this.list.querySelector('[aria-selected="true"]')?.scrollIntoView({ block: "nearest" });
  }

  pick(classId) {
    if (this.sent) return;
    this.sent = true;
    this.close();
    this.setTriggerValue("pick", classId);
  }

  /** A key while one of our boxes is open: nothing reaches Streamlit's shortcuts. */
  handleKey(event) {
    const key = event.key;
    event.stopPropagation();
    event.stopImmediatePropagation();
    if (key === "Escape" || (this.mode === "keys" && key === "?")) {
      event.preventDefault();
      this.close();
      return;
    }
    if (this.mode === "new") {
      if (deepActive() !== this.newInput) {
        this.newInput.focus(); // typed text goes into the box even after a click elsewhere
      }
      if (key === "Enter") {
        event.preventDefault();
        if (this.sent || event.repeat) return;
        this.sent = true;
        const name = this.newInput.value;
        this.close();
        this.setTriggerValue("new_class", name);
      }
    } else if (this.mode === "pick") {
      if (deepActive() !== this.filter) this.filter.focus();
      if (key === "ArrowDown" || key === "ArrowUp") {
        event.preventDefault();
        const step = key === "ArrowDown" ? 1 : -1;
        this.highlighted = (this.highlighted + step + this.shown.length) % Math.max(this.shown.length, 1);
        this.renderList();
      } else if (key === "Enter") {
        event.preventDefault();
        if (event.repeat) return;
        const chosen = this.shown[this.highlighted];
        if (chosen) this.pick(chosen.id);
      }
    } else {
      event.preventDefault();
    }
  }
}

export default function (component) {
  const { data, parentElement, setTriggerValue } = component;
  if (data && data.focus_only) return undefined; // the listener above is all it needs
  let root = parentElement.querySelector(".banana-keys");
  if (!root) {
    root = element("div", { class: "banana-keys" });
    parentElement.append(root);
    root.labelKeys = new LabelKeys(root);
    const host = parentElement.host || parentElement;
    host.classList?.add(OUR_HOST);
  }
  const labelKeys = root.labelKeys;
  labelKeys.update(data, setTriggerValue);
  const fresh = STATE.label !== labelKeys;
  STATE.label = labelKeys;
  if (fresh && STATE.box.mode && labelKeys.newBox.hidden && labelKeys.picker.hidden && labelKeys.keyMap.hidden) {
    labelKeys.restore();
  }
  return () => {
    if (STATE.label === labelKeys) STATE.label = null;
    // Left the Label page (no new element within a few seconds): the open box goes with it.
    setTimeout(() => {
      if (!labelPane()) STATE.box.mode = null;
    }, 3000);
  };
}
