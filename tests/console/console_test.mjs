// Drives the console in headless Chromium during `relance demo`: finds a customer, reads the
// timeline (an explanation and a delivery status), records a call outcome, and keeps
// screenshots. Exits non-zero with the reason on the first thing that does not hold.
//
//   node console_test.mjs BASE_URL ARTIFACT_DIR
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const [base, artifacts] = process.argv.slice(2);
mkdirSync(artifacts, { recursive: true });
const expect = (condition, what) => { if (!condition) throw new Error(what); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(base + "/");
  expect((await page.title()) === "Relance console", "the page at / is not the console");

  // Find a customer by the start of their id; a single match opens the timeline.
  await page.fill("#search", "demo-fr-plan");
  await page.press("#search", "Enter");
  await page.waitForSelector('[data-testid="customer-card"]', { timeout: 15000 });
  const card = await page.textContent('[data-testid="customer-card"]');
  expect(card.includes("Hugo Lambert"), "the timeline is not Hugo Lambert's: " + card);
  const statuses = await page.$$eval('[data-testid="delivery-status"]', (els) => els.map((e) => e.textContent));
  expect(statuses.length > 0, "no delivery status on the timeline");
  expect(statuses.every((s) => s.length > 0), "an empty delivery status");
  const reasons = await page.$$eval('[data-testid="explanation"] li', (els) => els.map((e) => e.textContent));
  expect(reasons.length > 0, "no explanation for what comes next");
  const sentReasons = await page.$$eval('[data-testid="sent-explanation"] li', (els) => els.length);
  expect(sentReasons > 0, "no explanation for the messages already sent");
  await page.screenshot({ path: join(artifacts, "console-timeline.png"), fullPage: true });
  console.log(`timeline: ${statuses.length} messages (${[...new Set(statuses)].join(", ")}), ${reasons.length} reasons, e.g. "${reasons[0]}"`);

  // The support team's view: record the outcome of the oldest open call task.
  await page.click('nav button[data-tab="calls"]');
  await page.waitForSelector("tr[data-task]", { timeout: 15000 });
  const row = page.locator("tr[data-task]").first();
  const task = await row.getAttribute("data-task");
  const customer = (await row.locator("td").nth(1).textContent()).trim();
  await row.locator('select[name="outcome"]').selectOption("promise_to_pay");
  await row.locator('input[name="promised_on"]').fill("2026-12-15");
  await row.locator('input[name="note"]').fill("will pay after the holidays");
  await row.locator('button[type="submit"]').click();
  await page.waitForSelector('[data-testid="outcome-recorded"]', { timeout: 15000 });
  await page.screenshot({ path: join(artifacts, "console-call-tasks.png"), fullPage: true });
  console.log(`call task ${task} (${customer}): promise to pay recorded`);

  // The outcome went through Kafka into the customer's timeline: the task no longer shows as
  // open, and the timeline carries it.
  const key = await row.locator("td").nth(1).locator("span").textContent();
  let carried = false;
  for (let i = 0; i < 100 && !carried; i++) {
    const t = await (await fetch(`${base}/v1/customers/${encodeURIComponent(key)}/timeline`)).json();
    carried = t.messages.some((m) => m.reminder_id === task && m.call_outcome === "promise_to_pay");
    if (!carried) await new Promise((r) => setTimeout(r, 100));
  }
  expect(carried, `the outcome of ${task} did not reach ${key}'s timeline`);
  const open = await (await fetch(`${base}/v1/call-tasks`)).json();
  expect(!open.tasks.some((t) => t.task_id === task), "the task is still listed as open");

  await page.click('nav button[data-tab="outbox"]');
  await page.waitForSelector("#outbox-list pre", { timeout: 15000 });
  await page.click('nav button[data-tab="activity"]');
  await page.waitForSelector("#chart-stages svg", { timeout: 15000 });
  await page.screenshot({ path: join(artifacts, "console-activity.png"), fullPage: true });
  expect(errors.length === 0, "the page threw: " + errors.join("; "));
  console.log("console: timeline, call outcome, outbox and activity checked; screenshots in " + artifacts);
} finally {
  await browser.close();
}
