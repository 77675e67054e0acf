ALTER TABLE orders DROP COLUMN coupon_code;
