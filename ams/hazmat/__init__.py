"""The wire format: MQ header chain, PDMQ header and the CMS structures AMS uses."""
