/**
 * `ctime`: the C library's fixed date format, as Python's `time.ctime()` prints it.
 *
 * Rules:
 * - Output is `'%a %b %e %H:%M:%S %Y'` in the process's local time zone (the `TZ` in effect when
 *   called): English abbreviations whatever the locale, the day of month right-aligned in two
 *   columns with a space, hours/minutes/seconds zero-padded, the year unpadded.
 * - Sub-second parts are dropped (rounded down), as Python does for a fractional timestamp.
 * - Pure apart from reading the local time zone through `Date`; no dependencies.
 */

import { sesameError } from '../errors.js';

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'] as const;
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'] as const;

function pad2(n: number): string {
  return String(n).padStart(2, '0');
}

/**
 * `date` in local time as `time.ctime()` formats it, e.g. `'Wed May  9 20:44:11 2018'`.
 *
 * @throws ERR_INVALID_ARGUMENT when `date` is an invalid date.
 */
export function ctime(date: Date): string {
  if (Number.isNaN(date.getTime())) throw sesameError('ERR_INVALID_ARGUMENT', 'ctime: invalid date');
  const day = DAYS[date.getDay()] as string;
  const month = MONTHS[date.getMonth()] as string;
  const dayOfMonth = String(date.getDate()).padStart(2, ' ');
  const time = `${pad2(date.getHours())}:${pad2(date.getMinutes())}:${pad2(date.getSeconds())}`;
  return `${day} ${month} ${dayOfMonth} ${time} ${date.getFullYear()}`;
}
