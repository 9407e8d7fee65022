#!/usr/bin/env node
/*
 * The reference SMSC of the SMPP tests: node-smpp (the npm package `smpp`, its exact
 * version pinned in package.json) serves the SMPP side, so the PDUs our ESME sends are
 * read, and the PDUs it gets are written, by a codec nobody here wrote.
 *
 *   node tests/peers/smsc/smsc.js --system-id ID --password PW \
 *        [--host 127.0.0.1] [--port 0] [--control-port 0]
 *
 * Port 0 is a free one. Once both listen it prints one line on stdout:
 *
 *   smsc listening on PORT control on CONTROL_PORT
 *
 * SMPP: bind_transmitter / bind_receiver / bind_transceiver with that system_id
 * (else ESME_RINVSYSID) and password (else ESME_RINVPASWD); a second bind on a
 * session is ESME_RALYBND, a submit_sm before a transmitting bind ESME_RINVBNDSTS.
 * Every submit_sm is recorded; one taken gets a message id (16 hex digits). When it
 * asked for a receipt (registered_delivery bits 0-1: 1 any outcome, 2 failure only)
 * the receipt goes as a deliver_sm (esm_class 0x04) to a bound receiver or
 * transceiver (round robin), after `receipt_delay_ms`, and again every
 * `receipt_retry_ms` until a deliver_sm_resp says ESME_ROK: one answered with an
 * error, unanswered within `receipt_ack_timeout_ms`, or in flight on a link that
 * drops is sent again (on any receiving bind). Formats (`receipt_format`):
 *   "10"   text only: id:… sub:001 dlvrd:… submit date:YYMMDDhhmm done date:YYMMDDhhmm
 *          stat:… err:… text:… (the first 20 characters of the message)
 *   "12"   the same with YYMMDDhhmmss dates
 *   "tlv"  an empty short_message, receipted_message_id and message_state TLVs only
 *   "none" no receipts
 * With `receipt_before_resp` the first try of a receipt is written before the
 * submit_sm_resp (the receipt overtakes the answer).
 *
 * Control: HTTP with JSON bodies on the control port.
 *   GET  /stats     counts: binds, bind_failures, submits, accepted, rejected, throttled,
 *                   failed, links_dropped, unanswered, receipts {sent, acked, pending}
 *   GET  /submits   {"submits": [...]} every submit_sm in arrival order: sequence_number,
 *                   system_id, bind, source_addr, destination_addr, esm_class, data_coding,
 *                   registered_delivery, validity_period and schedule_delivery_time (as
 *                   sent), short_message (hex), udh (hex, its length octet first; null
 *                   without UDHI), text (node-smpp's decoding), message_id ("" when not
 *                   taken), status (the submit_sm_resp's command_status; null: never
 *                   answered, the link dropped first)
 *   GET  /messages  {"messages": [...]} the taken submits joined by their concatenation
 *                   UDH (8- or 16-bit reference) per source and destination: reference,
 *                   total, parts (message ids by segment), text, complete
 *   GET  /receipts  {"reported": {message_id: "delivered"|"undelivered"|"expired"},
 *                   "none": [] (ours lists the receipts its plan never reports there),
 *                   "pending": [message_id], "attempts": {message_id: n},
 *                   "deliveries": [{message_id, attempt, format, command_status|null}]}
 *   POST /control   any of: throttle_above (accepted submits per second; 0 off: above it
 *                   ESME_RTHROTTLED), reject_prefix (destinations starting with it get
 *                   ESME_RINVDSTADR; "" off), fail_rate (0-1: ESME_RSYSERR), latency_ms
 *                   (before each submit_sm_resp), drop_after_submits (K: the K-th submit_sm
 *                   from now is taken, not answered, and its link destroyed; null off),
 *                   drop_link (true: destroy every link now), receipt_format, receipt_stat
 *                   (DELIVRD, UNDELIV, EXPIRED, REJECTD, ...), receipt_delay_ms,
 *                   receipt_before_resp, receipt_retry_ms, receipt_ack_timeout_ms.
 *                   Answers the settings; 400 for an unknown key or a bad value.
 *
 * node-smpp decodes short_message and the time fields as it reads them (to text and
 * Date); the script takes those filters off submit_sm to record what was sent, and
 * calls node-smpp's own decoder for `text`.
 */
'use strict';

const crypto = require('crypto');
const http = require('http');
const smpp = require('smpp');

const RECEIVING = new Set(['bind_receiver', 'bind_transceiver']);
const TRANSMITTING = new Set(['bind_transmitter', 'bind_transceiver']);
const STATES = {DELIVRD: 2, EXPIRED: 3, DELETED: 4, UNDELIV: 5, ACCEPTD: 6, UNKNOWN: 7, REJECTD: 8};
const REPORTED = {DELIVRD: 'delivered', EXPIRED: 'expired'};  // the rest: undelivered
const FORMATS = new Set(['10', '12', 'tlv', 'none']);

function options(argv) {
	const found = {host: '127.0.0.1', port: 0, 'control-port': 0};
	for (let i = 0; i < argv.length; i += 2) {
		const name = argv[i].replace(/^--/, '');
		if (!(name in found) && name !== 'system-id' && name !== 'password') {
			throw new Error(`unknown option ${argv[i]}`);
		}
		found[name] = argv[i + 1];
	}
	if (found['system-id'] === undefined || found.password === undefined) {
		throw new Error('--system-id and --password are required');
	}
	return found;
}

const args = options(process.argv.slice(2));
const settings = {
	throttle_above: 0, reject_prefix: '', fail_rate: 0, latency_ms: 0,
	drop_after_submits: null, receipt_format: '10', receipt_stat: 'DELIVRD',
	receipt_delay_ms: 0, receipt_before_resp: false, receipt_retry_ms: 200,
	receipt_ack_timeout_ms: 5000,
};
const stats = {
	binds: 0, bind_failures: 0, submits: 0, accepted: 0, rejected: 0, throttled: 0,
	failed: 0, links_dropped: 0, unanswered: 0,
};
const submits = [];
const receipts = new Map();  // message id -> {pdu, attempts, acked, inflight}
const deliveries = [];
const waitingForReceiver = [];
const acceptedAt = [];  // times of the submits taken in the last second
let untilDrop = null;
let nextReceiver = 0;

// Record submit_sm as sent: node-smpp would turn these into text and Dates.
for (const field of ['short_message', 'validity_period', 'schedule_delivery_time']) {
	delete smpp.commands.submit_sm.params[field].filter;
}

function hex(buffer) {
	return Buffer.from(buffer).toString('hex');
}

function udhOf(pdu) {
	const raw = pdu.short_message;
	if (!(pdu.esm_class & smpp.ESM_CLASS.UDH_INDICATOR) || raw.length === 0) {
		return null;
	}
	return raw.slice(0, raw[0] + 1);
}

function concatenation(udh) {
	for (let i = 1; udh && i + 1 < udh.length; i += 2 + udh[i + 1]) {
		if (udh[i] === 0x00 && udh[i + 1] === 3) {
			return {reference: udh[i + 2], total: udh[i + 3], seq: udh[i + 4]};
		}
		if (udh[i] === 0x08 && udh[i + 1] === 4) {
			return {reference: udh.readUInt16BE(i + 2), total: udh[i + 4], seq: udh[i + 5]};
		}
	}
	return null;
}

function decodedText(pdu) {
	try {  // node-smpp's own reading of the message, UDH skipped
		const decoded = smpp.filters.message.decode.call(pdu, pdu.short_message);
		return typeof decoded.message === 'string' ? decoded.message : hex(decoded.message);
	} catch (e) {
		return null;
	}
}

function receivers() {
	return server.sessions.filter((s) => s.bound && RECEIVING.has(s.bound) && !s.dropped);
}

function pickReceiver(preferred) {
	if (preferred && receivers().includes(preferred)) {
		return preferred;
	}
	const all = receivers();
	return all.length ? all[nextReceiver++ % all.length] : null;
}

function dropLink(session) {
	if (!session.dropped) {
		session.dropped = true;
		stats.links_dropped++;
		session.destroy();
	}
}

function stamp(date, digits) {
	const two = (n) => String(n).padStart(2, '0');
	const text = String(date.getUTCFullYear()).slice(2) + two(date.getUTCMonth() + 1) +
		two(date.getUTCDate()) + two(date.getUTCHours()) + two(date.getUTCMinutes()) +
		two(date.getUTCSeconds());
	return text.slice(0, digits);
}

function receiptPdu(record, submittedAt) {
	const stat = settings.receipt_stat;
	const fields = {
		source_addr: record.destination_addr, destination_addr: record.source_addr,
		esm_class: smpp.ESM_CLASS.MC_DELIVERY_RECEIPT,
	};
	if (settings.receipt_format === 'tlv') {
		return {...fields, short_message: '', receipted_message_id: record.message_id,
			message_state: STATES[stat] || STATES.UNKNOWN};
	}
	const digits = Number(settings.receipt_format);
	const delivered = stat === 'DELIVRD' ? '001' : '000';
	const err = stat === 'DELIVRD' ? '000' : '001';
	const text = (record.text || '').slice(0, 20);
	return {...fields, short_message: `id:${record.message_id} sub:001 dlvrd:${delivered} ` +
		`submit date:${stamp(submittedAt, digits)} done date:${stamp(new Date(), digits)} ` +
		`stat:${stat} err:${err} text:${text}`};
}

function owe(record, session) {
	const wanted = record.registered_delivery & 0x03;
	const failure = settings.receipt_stat !== 'DELIVRD';
	if (settings.receipt_format === 'none' || wanted === 0 || (wanted === 2 && !failure)) {
		return null;
	}
	const receipt = {
		message_id: record.message_id, stat: settings.receipt_stat,
		format: settings.receipt_format, pdu: receiptPdu(record, new Date()),
		attempts: 0, acked: false, inflight: null,
	};
	receipts.set(record.message_id, receipt);
	if (settings.receipt_before_resp) {
		send(receipt, session);
	} else {
		setTimeout(() => send(receipt, session), settings.receipt_delay_ms);
	}
	return receipt;
}

function send(receipt, preferred) {
	if (receipt.acked || receipt.inflight) {
		return;
	}
	const session = pickReceiver(preferred);
	if (!session) {
		waitingForReceiver.push(receipt);
		return;
	}
	const attempt = ++receipt.attempts;
	const delivery = {message_id: receipt.message_id, attempt, format: receipt.format,
		command_status: null};
	deliveries.push(delivery);
	const pdu = new smpp.PDU('deliver_sm', {...receipt.pdu});
	const timer = setTimeout(() => retry(receipt, attempt), settings.receipt_ack_timeout_ms);
	receipt.inflight = {session, attempt, timer};
	session.send(pdu, (resp) => {
		delivery.command_status = resp.command_status;
		if (resp.command_status === smpp.ESME_ROK) {
			clearTimeout(timer);
			receipt.acked = true;
			receipt.inflight = null;
		} else if (receipt.inflight && receipt.inflight.attempt === attempt) {
			clearTimeout(timer);
			receipt.inflight = null;
			setTimeout(() => send(receipt), settings.receipt_retry_ms);
		}
	});
}

function retry(receipt, attempt) {  // no answer in time
	if (receipt.inflight && receipt.inflight.attempt === attempt) {
		receipt.inflight = null;
		send(receipt);
	}
}

function linkClosed(session) {
	for (const receipt of receipts.values()) {
		if (receipt.inflight && receipt.inflight.session === session) {
			clearTimeout(receipt.inflight.timer);
			receipt.inflight = null;
			setTimeout(() => send(receipt), 0);
		}
	}
}

function throttled(now) {
	while (acceptedAt.length && acceptedAt[0] <= now - 1000) {
		acceptedAt.shift();
	}
	return settings.throttle_above > 0 && acceptedAt.length >= settings.throttle_above;
}

function onSubmit(session, pdu) {
	if (session.dropped) {
		return;  // read after the link was destroyed: never arrived
	}
	stats.submits++;
	const udh = udhOf(pdu);
	const record = {
		sequence_number: pdu.sequence_number, system_id: session.system_id || null,
		bind: session.bound || null, source_addr: pdu.source_addr,
		destination_addr: pdu.destination_addr, esm_class: pdu.esm_class,
		data_coding: pdu.data_coding, registered_delivery: pdu.registered_delivery,
		validity_period: pdu.validity_period,
		schedule_delivery_time: pdu.schedule_delivery_time,
		short_message: hex(pdu.short_message), udh: udh ? hex(udh) : null,
		text: decodedText(pdu), message_id: '', status: null,
	};
	submits.push(record);
	let status = smpp.ESME_ROK;
	const now = performance.now();
	if (!session.bound || !TRANSMITTING.has(session.bound)) {
		status = smpp.ESME_RINVBNDSTS;
	} else if (settings.reject_prefix && pdu.destination_addr.startsWith(settings.reject_prefix)) {
		status = smpp.ESME_RINVDSTADR;
		stats.rejected++;
	} else if (throttled(now)) {
		status = smpp.ESME_RTHROTTLED;
		stats.throttled++;
	} else if (Math.random() < settings.fail_rate) {
		status = smpp.ESME_RSYSERR;
		stats.failed++;
	}
	if (status === smpp.ESME_ROK) {
		stats.accepted++;
		acceptedAt.push(now);
		record.message_id = crypto.randomBytes(8).toString('hex');
		owe(record, session);
	}
	if (untilDrop !== null && --untilDrop === 0) {
		untilDrop = settings.drop_after_submits = null;
		stats.unanswered++;
		dropLink(session);
		return;
	}
	const answer = () => {
		if (session.dropped) {
			stats.unanswered++;
			return;
		}
		record.status = status;
		session.send(pdu.response(status === smpp.ESME_ROK ?
			{message_id: record.message_id} : {command_status: status}));
	};
	if (settings.latency_ms > 0) {
		setTimeout(answer, settings.latency_ms);
	} else {
		answer();
	}
}

function onBind(session, pdu) {
	let status = smpp.ESME_ROK;
	if (session.bound) {
		status = smpp.ESME_RALYBND;
	} else if (pdu.system_id !== args['system-id']) {
		status = smpp.ESME_RINVSYSID;
	} else if (pdu.password !== args.password) {
		status = smpp.ESME_RINVPASWD;
	}
	if (status === smpp.ESME_ROK) {
		stats.binds++;
		session.bound = pdu.command;
		session.system_id = pdu.system_id;
		session.send(pdu.response({system_id: 'node-smpp'}));
		if (RECEIVING.has(pdu.command)) {
			for (const receipt of waitingForReceiver.splice(0)) {
				send(receipt, session);
			}
		}
	} else {
		stats.bind_failures++;
		session.send(pdu.response({command_status: status}));
	}
}

const server = smpp.createServer((session) => {
	session.bound = null;
	session.dropped = false;
	session.on('pdu', (pdu) => {
		if (pdu.isResponse()) {
			return;  // deliver_sm_resp: the callback of its deliver_sm
		}
		if (pdu.command.startsWith('bind_')) {
			onBind(session, pdu);
		} else if (pdu.command === 'submit_sm') {
			onSubmit(session, pdu);
		} else if (pdu.command === 'enquire_link') {
			session.send(pdu.response());
		} else if (pdu.command === 'unbind') {
			session.send(pdu.response());
			session.bound = null;
			session.close();
		} else {  // generic_nack for an unknown command, its own _resp for the rest
			session.send(pdu.response({command_status: smpp.ESME_RINVCMDID}));
		}
	});
	session.on('error', (error) => console.error(`smsc: session error: ${error.message}`));
	session.on('close', () => {
		session.dropped = true;
		linkClosed(session);
	});
});

const SETTERS = {
	throttle_above: (v) => Number.isInteger(v) && v >= 0,
	reject_prefix: (v) => typeof v === 'string',
	fail_rate: (v) => typeof v === 'number' && v >= 0 && v <= 1,
	latency_ms: (v) => typeof v === 'number' && v >= 0,
	drop_after_submits: (v) => v === null || (Number.isInteger(v) && v > 0),
	drop_link: (v) => typeof v === 'boolean',
	receipt_format: (v) => FORMATS.has(v),
	receipt_stat: (v) => v in STATES,
	receipt_delay_ms: (v) => typeof v === 'number' && v >= 0,
	receipt_before_resp: (v) => typeof v === 'boolean',
	receipt_retry_ms: (v) => typeof v === 'number' && v >= 0,
	receipt_ack_timeout_ms: (v) => typeof v === 'number' && v > 0,
};

function control(body) {
	for (const [key, value] of Object.entries(body)) {
		if (!(key in SETTERS) || !SETTERS[key](value)) {
			throw new Error(`bad setting ${key}: ${JSON.stringify(value)}`);
		}
	}
	for (const [key, value] of Object.entries(body)) {
		if (key !== 'drop_link') {
			settings[key] = value;
		}
	}
	if ('drop_after_submits' in body) {
		untilDrop = body.drop_after_submits;
	}
	if (body.drop_link) {
		server.sessions.slice().forEach(dropLink);
	}
	return settings;
}

function messages() {
	const joined = new Map();
	const found = [];
	for (const record of submits) {
		if (!record.message_id) {
			continue;
		}
		const part = concatenation(record.udh && Buffer.from(record.udh, 'hex'));
		if (!part) {
			found.push({source_addr: record.source_addr, destination_addr: record.destination_addr,
				reference: null, total: 1, parts: [record.message_id], text: record.text,
				complete: true});
			continue;
		}
		const key = `${record.source_addr}|${record.destination_addr}|${part.reference}`;
		let message = joined.get(key);
		if (!message || message.complete) {
			message = {source_addr: record.source_addr, destination_addr: record.destination_addr,
				reference: part.reference, total: part.total, parts: [], texts: [],
				complete: false};
			joined.set(key, message);
			found.push(message);
		}
		message.parts[part.seq - 1] = record.message_id;
		message.texts[part.seq - 1] = record.text;
		message.complete = message.parts.filter(Boolean).length === message.total;
	}
	return found.map(({texts, ...m}) => texts ? {...m, text: texts.join('')} : m);
}

function receiptListing() {
	const listing = {reported: {}, none: [], pending: [], attempts: {}, deliveries};
	for (const receipt of receipts.values()) {
		listing.attempts[receipt.message_id] = receipt.attempts;
		if (receipt.acked) {
			listing.reported[receipt.message_id] = REPORTED[receipt.stat] || 'undelivered';
		} else {
			listing.pending.push(receipt.message_id);
		}
	}
	return listing;
}

function statsNow() {
	const all = [...receipts.values()];
	return {...stats, receipts: {sent: deliveries.length,
		acked: all.filter((r) => r.acked).length, pending: all.filter((r) => !r.acked).length}};
}

const ROUTES = {
	'GET /stats': statsNow,
	'GET /submits': () => ({submits}),
	'GET /messages': () => ({messages: messages()}),
	'GET /receipts': receiptListing,
	'POST /control': control,
};

const controlServer = http.createServer((request, response) => {
	const chunks = [];
	request.on('data', (chunk) => chunks.push(chunk));
	request.on('end', () => {
		const route = ROUTES[`${request.method} ${request.url}`];
		let status = 200;
		let answer;
		try {
			if (!route) {
				status = 404;
				answer = {error: `no route ${request.method} ${request.url}`};
			} else {
				const body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString()) : {};
				answer = route(body);
			}
		} catch (error) {
			status = 400;
			answer = {error: error.message};
		}
		response.writeHead(status, {'Content-Type': 'application/json'});
		response.end(JSON.stringify(answer));
	});
});

server.listen(Number(args.port), args.host, () => {
	controlServer.listen(Number(args['control-port']), args.host, () => {
		console.log(`smsc listening on ${server.address().port} ` +
			`control on ${controlServer.address().port}`);
	});
});

for (const signal of ['SIGINT', 'SIGTERM']) {
	process.on(signal, () => process.exit(0));
}
