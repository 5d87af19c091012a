-- Intent: a shop's settings, beside its name on app.tenants (the shop's one row, global), each
-- bounded by a named CHECK so that an operator in psql meets the rules the API's request schema
-- states: timezone (IANA; also checked against pg_timezone_names by a trigger in
-- policies/settings.sql, a list no CHECK can read), currency (ISO 4217), tax rate in basis points
-- (0 to 5,000), invoice number prefix (1 to 10 of A-Z, 0-9 and '-'), payment terms (0 to 120 days),
-- appointment slot length (5 to 240 minutes) and reminders (on or off). And what issuing an
-- invoice takes from them: its printed number (prefix and number) and its due date (the issue
-- day in the shop's timezone plus the payment terms), both written by app.invoice_guard.
-- Defaults: what every shop had before (UTC; numbering without a prefix is not kept: 'INV-').
-- Invoices issued before this migration keep invoice_number and due_date NULL: they were issued
-- without settings, and an issued invoice never changes.
-- Rollback plan: forward fix. The columns have defaults and the previous release never reads
-- them; a new migration may drop them (the settings' values are lost, the audit keeps them).

-- Up Migration

alter table app.tenants
  add column timezone                 text    not null default 'UTC',
  add column currency                 text    not null default 'EUR',
  add column tax_rate_bps             integer not null default 0,
  add column invoice_number_prefix    text    not null default 'INV-',
  add column payment_terms_days       integer not null default 14,
  add column appointment_slot_minutes integer not null default 15,
  add column reminders_enabled        boolean not null default false,
  add constraint tenants_timezone_check check (length(timezone) <= 64 and timezone ~ '^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$'),
  -- ISO 4217, the codes in use (funds, metals and testing codes excluded). server/core/currencies.ts
  -- holds the API's copy; test/shared-lists.test.ts fails while the two differ.
  add constraint tenants_currency_check check (currency = any (array[
    'AED', 'AFN', 'ALL', 'AMD', 'ANG', 'AOA', 'ARS', 'AUD', 'AWG', 'AZN', 'BAM', 'BBD', 'BDT', 'BGN', 'BHD', 'BIF',
    'BMD', 'BND', 'BOB', 'BRL', 'BSD', 'BTN', 'BWP', 'BYN', 'BZD', 'CAD', 'CDF', 'CHF', 'CLP', 'CNY', 'COP', 'CRC',
    'CUP', 'CVE', 'CZK', 'DJF', 'DKK', 'DOP', 'DZD', 'EGP', 'ERN', 'ETB', 'EUR', 'FJD', 'FKP', 'GBP', 'GEL', 'GHS',
    'GIP', 'GMD', 'GNF', 'GTQ', 'GYD', 'HKD', 'HNL', 'HTG', 'HUF', 'IDR', 'ILS', 'INR', 'IQD', 'IRR', 'ISK', 'JMD',
    'JOD', 'JPY', 'KES', 'KGS', 'KHR', 'KMF', 'KPW', 'KRW', 'KWD', 'KYD', 'KZT', 'LAK', 'LBP', 'LKR', 'LRD', 'LSL',
    'LYD', 'MAD', 'MDL', 'MGA', 'MKD', 'MMK', 'MNT', 'MOP', 'MRU', 'MUR', 'MVR', 'MWK', 'MXN', 'MYR', 'MZN', 'NAD',
    'NGN', 'NIO', 'NOK', 'NPR', 'NZD', 'OMR', 'PAB', 'PEN', 'PGK', 'PHP', 'PKR', 'PLN', 'PYG', 'QAR', 'RON', 'RSD',
    'RUB', 'RWF', 'SAR', 'SBD', 'SCR', 'SDG', 'SEK', 'SGD', 'SHP', 'SLE', 'SOS', 'SRD', 'SSP', 'STN', 'SVC', 'SYP',
    'SZL', 'THB', 'TJS', 'TMT', 'TND', 'TOP', 'TRY', 'TTD', 'TWD', 'TZS', 'UAH', 'UGX', 'USD', 'UYU', 'UZS', 'VES',
    'VND', 'VUV', 'WST', 'XAF', 'XCD', 'XCG', 'XOF', 'XPF', 'YER', 'ZAR', 'ZMW', 'ZWG'
  ])),
  add constraint tenants_tax_rate_bps_check check (tax_rate_bps >= 0 and tax_rate_bps <= 5000),
  add constraint tenants_invoice_number_prefix_check check (invoice_number_prefix ~ '^[A-Z0-9-]{1,10}$'),
  add constraint tenants_payment_terms_days_check check (payment_terms_days >= 0 and payment_terms_days <= 120),
  add constraint tenants_appointment_slot_minutes_check check (appointment_slot_minutes >= 5 and appointment_slot_minutes <= 240);

comment on column app.tenants.timezone is 'The shop''s IANA timezone (a name of pg_timezone_names): the calendar day an invoice is issued on, for its due date.';
comment on column app.tenants.currency is 'ISO 4217 code of the shop''s prices.';
comment on column app.tenants.tax_rate_bps is 'Tax rate in basis points (1/100 of a percent): 0 to 5,000.';
comment on column app.tenants.invoice_number_prefix is 'Printed before an invoice''s number when it is issued (invoices.invoice_number).';
comment on column app.tenants.payment_terms_days is 'Days after the issue day an issued invoice is due (invoices.due_date).';
comment on column app.tenants.appointment_slot_minutes is 'An appointment lasts a whole number of these slots (policies/appointments.sql).';
comment on column app.tenants.reminders_enabled is 'Whether the shop sends appointment reminders.';

alter table app.invoices
  add column invoice_number text,
  add column due_date       date;

comment on column app.invoices.invoice_number is 'The printed number: the shop''s prefix when it was issued, then number. Written on issue by app.invoice_guard; NULL for drafts and for invoices issued before settings existed.';
comment on column app.invoices.due_date is 'The issue day in the shop''s timezone plus its payment terms at issue. Written on issue by app.invoice_guard.';
